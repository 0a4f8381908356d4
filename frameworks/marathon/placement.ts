/**
 * Launch decisions through the SDK's placement pipeline, and the per-app offer
 * statistics `GET /v2/queue` shows (`processedOffersSummary`, `lastUnusedOffers`).
 *
 * One `Placer` per offer batch holds what is left of each offer, so all apps
 * needing instances share the batch without double-booking a resource. Each
 * app's `InstanceCounts` starts from its live instances, so UNIQUE, GROUP_BY and
 * MAX_PER see instances launched before this batch as well as those placed in it.
 */
import {
  agentFacts, InstanceCounts, Placer, type AgentFacts, type Constraint, type Offer, type Resource, type Reasons,
} from '../sdk/index.js';
import type { AppDefinition } from './app.js';

export interface Demand {
  app: AppDefinition;
  count: number;
  /** Agents of the app's live instances (for constraints). */
  existing: AgentFacts[];
}

export interface PlannedTask { app: AppDefinition; offer: Offer; facts: AgentFacts; resources: Resource[]; ports: number[] }

export interface PlacementOutcome {
  tasks: PlannedTask[];
  /** Per app: per offer it could not use, the reasons (empty list = used or not examined). */
  rejections: Map<string, Map<string, string[]>>;
  /** Offers something was placed on. */
  used: Set<string>;
  /** Per app: the counted reasons of the first instance that found no offer. */
  unplaced: Map<string, Reasons>;
}

const demandOf = (a: AppDefinition): { cpus: number; mem: number; disk: number; gpus: number; ports: number } => ({
  cpus: a.cpus, mem: a.mem, disk: a.disk, gpus: a.gpus, ports: a.portDefinitions.length,
});

/** Places every demand into the batch, apps in the given order (deployments first is the caller's choice). */
export function placeDemands(offers: readonly Offer[], demands: readonly Demand[]): PlacementOutcome {
  const placer = new Placer(offers);
  const out: PlacementOutcome = { tasks: [], rejections: new Map(), used: new Set(), unplaced: new Map() };
  for (const d of demands) {
    const constraints = d.app.constraints as unknown as Constraint[];
    const group = InstanceCounts.for(constraints);
    for (const f of d.existing) group.add(f);
    const res = placer.place({ demand: demandOf(d.app), constraints, group }, d.count);
    for (const p of res.placements) {
      out.tasks.push({ app: d.app, offer: p.offer, facts: p.facts, resources: p.picked.resources, ports: p.picked.ports });
      out.used.add(p.offer.id.value);
    }
    if (res.unplaced > 0) out.unplaced.set(d.app.id, res.reasons);
  }
  // Why each offer left unused could not take one more instance of each app still short.
  const unusedOffers = placer.unused();
  for (const d of demands) {
    if (!out.unplaced.has(d.app.id)) continue;
    const constraints = d.app.constraints as unknown as Constraint[];
    const per = new Map<string, string[]>();
    const placedFacts = out.tasks.filter((t) => t.app.id === d.app.id).map((t) => t.facts);
    for (const o of unusedOffers) {
      const group = InstanceCounts.for(constraints);
      for (const f of [...d.existing, ...placedFacts]) group.add(f);
      const r = new Placer([o]).place({ demand: demandOf(d.app), constraints, group }, 1);
      per.set(o.id.value, Object.keys(r.reasons));
    }
    out.rejections.set(d.app.id, per);
  }
  return out;
}

/** Marathon's reason names for the pipeline's reasons. */
export function marathonReason(r: string): string {
  if (r === 'insufficient cpus') return 'InsufficientCpus';
  if (r === 'insufficient mem') return 'InsufficientMemory';
  if (r === 'insufficient disk') return 'InsufficientDisk';
  if (r === 'insufficient gpus') return 'InsufficientGpus';
  if (r === 'insufficient ports') return 'InsufficientPorts';
  if (r.startsWith('constraint ')) return 'UnfulfilledConstraint';
  return r;
}

const REASON_ORDER = ['UnfulfilledRole', 'UnfulfilledConstraint', 'NoCorrespondingReservationFound', 'AgentMaintenance', 'InsufficientCpus', 'InsufficientMemory', 'InsufficientDisk', 'InsufficientGpus', 'InsufficientPorts', 'DeclinedScarceResources'];
/** Offer evaluations remembered per app (the "last offers" of the summary). */
const WINDOW = 100;
const LAST_UNUSED = 10;

interface Evaluation { reasons: string[] }

/** What the app's recent offers said: counts over the last WINDOW offers, the last LAST_UNUSED unused ones. */
export class OfferStats {
  private processed = 0;
  private unusedCount = 0;
  private lastUsedAt?: number;
  private lastUnusedAt?: number;
  private readonly window: Evaluation[] = [];
  private readonly unusedOffers: { offer: Offer; reasons: string[]; at: number }[] = [];

  /** Records one batch: offers used for this app (or by others) and the reasons of the rest. */
  record(offers: readonly Offer[], rejections: Map<string, string[]>, used: Set<string>, now: number): void {
    for (const o of offers) {
      const reasons = rejections.get(o.id.value);
      this.processed++;
      if (reasons === undefined || reasons.length === 0) {
        if (used.has(o.id.value)) this.lastUsedAt = now;
        this.push({ reasons: [] });
        continue;
      }
      this.unusedCount++;
      this.lastUnusedAt = now;
      this.push({ reasons });
      this.unusedOffers.push({ offer: o, reasons, at: now });
      if (this.unusedOffers.length > LAST_UNUSED) this.unusedOffers.shift();
    }
  }

  private push(e: Evaluation): void {
    this.window.push(e);
    if (this.window.length > WINDOW) this.window.shift();
  }

  summary(): Record<string, unknown> {
    const counts = new Map<string, number>();
    for (const e of this.window) for (const r of new Set(e.reasons.map(marathonReason))) counts.set(r, (counts.get(r) ?? 0) + 1);
    const extra = [...counts.keys()].filter((r) => !REASON_ORDER.includes(r));
    const rows = [...REASON_ORDER, ...extra].map((reason) => ({ reason, declined: counts.get(reason) ?? 0, processed: this.window.length }));
    return {
      processedOffersCount: this.processed, unusedOffersCount: this.unusedCount,
      ...(this.lastUnusedAt ? { lastUnusedOfferAt: new Date(this.lastUnusedAt).toISOString() } : {}),
      ...(this.lastUsedAt ? { lastUsedOfferAt: new Date(this.lastUsedAt).toISOString() } : {}),
      rejectSummaryLastOffers: rows,
      rejectSummaryLaunchAttempt: rows,
    };
  }

  /**
   * Marathon's `lastUnusedOffers`. Each `reason` list carries Marathon's reason name and,
   * after it, the pipeline's own words (`constraint hostname:UNIQUE`), so a reader sees
   * which constraint or resource was missing, not only that one was.
   */
  lastUnused(): Record<string, unknown>[] {
    return this.unusedOffers.map(({ offer, reasons, at }) => ({
      offer: {
        id: offer.id.value, agentId: offer.agent_id.value, hostname: offer.hostname,
        resources: (offer.resources ?? []).map((r) => ({
          name: r.name, ...(r.scalar ? { scalar: r.scalar.value } : {}),
          ...(r.ranges ? { ranges: (r.ranges.range ?? []).map((x) => ({ begin: x.begin, end: x.end })) } : {}),
          ...(r.set ? { set: r.set.item ?? [] } : {}), role: r.allocation_info?.role ?? r.role ?? '*',
        })),
        attributes: (offer.attributes ?? []).map((a) => ({ name: a.name, ...(a.text ? { text: a.text.value } : {}), ...(a.scalar ? { scalar: a.scalar.value } : {}) })),
      },
      timestamp: new Date(at).toISOString(),
      reason: [...new Set([...reasons.map(marathonReason), ...reasons.filter((r) => marathonReason(r) !== r)])],
    }));
  }
}

export { agentFacts };
