/** Single-machine mode: the only master, always leading (Mesos' StandaloneMasterContender). */
import type { LeaderState, MasterContender } from './types.js';

export class StandaloneContender implements MasterContender {
  state: LeaderState = 'standby';
  readonly epoch = 0;
  private cbs: ((s: LeaderState, e: number) => void)[] = [];
  onStateChange(cb: (s: LeaderState, e: number) => void): void { this.cbs.push(cb); }
  async start(): Promise<void> {
    this.state = 'leading';
    for (const cb of this.cbs) cb('leading', 0);
  }
  async close(): Promise<void> { this.state = 'standby'; }
}
