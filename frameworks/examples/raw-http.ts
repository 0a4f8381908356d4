/**
 * A framework written against the Mesos v1 scheduler HTTP API with nothing but
 * `fetch` — no SDK, no Berth imports — to show the wire:
 *
 *  1. POST /api/v1/scheduler a SUBSCRIBE (JSON). The answer is 200 with a
 *     chunked body that never ends: RecordIO, i.e. `<length>\n<json>` repeated,
 *     and a `Mesos-Stream-Id` header every later call must echo.
 *  2. Read records: SUBSCRIBED (our framework id), OFFERS, UPDATE, HEARTBEAT…
 *  3. ACCEPT one offer with a LAUNCH; DECLINE the rest.
 *  4. ACKNOWLEDGE every UPDATE that carries a `uuid` (base64 in JSON).
 *  5. On a terminal state: RECONCILE (explicit), then TEARDOWN.
 *
 * The same program runs unchanged against Apache Mesos.
 *
 *   node dist/frameworks/examples/raw-http.js --master http://127.0.0.1:5050
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

/** Splits a RecordIO byte stream into records; bytes may arrive split anywhere. */
export class RecordIOReader {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf, 0);
    joined.set(chunk, this.buf.length);
    this.buf = joined;
    const out: Uint8Array[] = [];
    for (;;) {
      const nl = this.buf.indexOf(10); // '\n' ends the decimal length
      if (nl < 0) return out;
      const len = Number(new TextDecoder().decode(this.buf.subarray(0, nl)));
      if (!Number.isInteger(len) || len < 0) throw new Error('bad RecordIO length');
      if (this.buf.length < nl + 1 + len) return out;
      out.push(this.buf.slice(nl + 1, nl + 1 + len));
      this.buf = this.buf.slice(nl + 1 + len);
    }
  }
}

/** Just the wire fields this program reads (Mesos JSON: snake_case, enum names as strings). */
interface Id { value: string }
interface WireResource { name: string; type: string; scalar?: { value: number }; allocation_info?: { role?: string } }
interface WireOffer { id: Id; agent_id: Id; hostname: string; resources: WireResource[] }
interface WireStatus { task_id: Id; agent_id?: Id; state: string; reason?: string; uuid?: string }
interface WireEvent {
  type: string;
  subscribed?: { framework_id: Id; heartbeat_interval_seconds: number };
  offers?: { offers: WireOffer[] };
  update?: { status: WireStatus };
  error?: { message: string };
}
type Json = Record<string, unknown>;

export async function rawHttp(master: string, cmd = 'echo hello from the wire', log: (l: string) => void = console.log): Promise<string> {
  const endpoint = `${master.replace(/\/$/, '')}/api/v1/scheduler`;
  const sub = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'nobody', name: 'raw-http' } } }),
  });
  if (sub.status !== 200 || !sub.body) throw new Error(`SUBSCRIBE: ${sub.status} ${await sub.text()}`);
  const streamId = sub.headers.get('Mesos-Stream-Id')!;
  let frameworkId = '';
  const call = async (body: Json): Promise<void> => {
    const r = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Mesos-Stream-Id': streamId },
      body: JSON.stringify({ framework_id: { value: frameworkId }, ...body }),
    });
    if (r.status !== 202 && r.status !== 200) throw new Error(`${String(body.type)}: ${r.status} ${await r.text()}`);
  };

  const reader = sub.body.getReader();
  const records = new RecordIOReader();
  let launched = false;
  let reconciled = false;
  let final = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const rec of records.push(value)) {
        const ev = JSON.parse(new TextDecoder().decode(rec)) as WireEvent;
        switch (ev.type) {
          case 'SUBSCRIBED':
            frameworkId = ev.subscribed!.framework_id.value;
            log(`SUBSCRIBED ${frameworkId} (heartbeat every ${ev.subscribed!.heartbeat_interval_seconds}s)`);
            break;
          case 'OFFERS':
            for (const offer of ev.offers!.offers) {
              const cpus = offer.resources.find((r) => r.name === 'cpus');
              const mem = offer.resources.find((r) => r.name === 'mem');
              if (launched || !cpus || !mem || (cpus.scalar?.value ?? 0) < 0.1 || (mem.scalar?.value ?? 0) < 32) {
                await call({ type: 'DECLINE', decline: { offer_ids: [offer.id], filters: { refuse_seconds: 60 } } });
                continue;
              }
              launched = true;
              // Task resources are the offer's own entries (allocation_info.role included) with smaller amounts.
              const task = {
                name: 'raw', task_id: { value: 'raw-1' }, agent_id: offer.agent_id,
                resources: [{ ...cpus, scalar: { value: 0.1 } }, { ...mem, scalar: { value: 32 } }],
                command: { shell: true, value: cmd },
              };
              await call({ type: 'ACCEPT', accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [task] } }] } });
              log(`ACCEPT ${offer.id.value} on ${offer.hostname}`);
            }
            break;
          case 'UPDATE': {
            const st = ev.update!.status;
            log(`UPDATE ${st.task_id.value} ${st.state}${st.reason ? ` ${st.reason}` : ''}`);
            if (st.uuid) await call({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: st.agent_id, task_id: st.task_id, uuid: st.uuid } });
            const terminal = ['TASK_FINISHED', 'TASK_FAILED', 'TASK_KILLED', 'TASK_ERROR', 'TASK_LOST', 'TASK_DROPPED', 'TASK_GONE'].includes(st.state);
            if (terminal && !reconciled) {
              final = st.state;
              reconciled = true;
              await call({ type: 'RECONCILE', reconcile: { tasks: [{ task_id: st.task_id, agent_id: st.agent_id }] } });
            } else if (terminal && st.reason === 'REASON_RECONCILIATION') {
              await call({ type: 'TEARDOWN' });
              return final;
            }
            break;
          }
          case 'HEARTBEAT': break;
          case 'ERROR': throw new Error(`ERROR from master: ${ev.error?.message ?? ''}`);
          default: log(`event ${ev.type}`);
        }
      }
    }
    throw new Error('event stream ended');
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { master: { type: 'string', default: 'http://127.0.0.1:5050' }, cmd: { type: 'string' } } });
  rawHttp(values.master!, values.cmd).then((state) => process.exit(state === 'TASK_FINISHED' ? 0 : 1), (e: Error) => {
    console.error(e.message);
    process.exit(1);
  });
}
