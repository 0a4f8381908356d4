import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CALL, EVENT, decode, decodeCall, encode, encodeCall, encodeEvent, decodeEvent, fromJson } from '../../proto/codec.js';
import type { Call, Event } from '../../proto/types.js';

const uuid = Buffer.alloc(16, 7).toString('base64');

test('a Call survives protobuf encoding with Mesos field names and enum names', () => {
  const call: Call = {
    framework_id: { value: 'f1' }, type: 'ACKNOWLEDGE',
    acknowledge: { agent_id: { value: 'a1' }, task_id: { value: 't1' }, uuid },
  };
  assert.equal(decodeCall(encodeCall(call)), call);
});

test('Mesos field numbers are on the wire: Call.type is field 2, Call.acknowledge field 8', () => {
  const bytes = encodeCall({ type: 'ACKNOWLEDGE', acknowledge: { agent_id: { value: 'a' }, task_id: { value: 't' }, uuid } });
  assert.is(bytes[0], (2 << 3) | 0, 'type: field 2, varint');
  assert.is(bytes[1], 8, 'ACKNOWLEDGE = 8');
  assert.is(bytes[2], (8 << 3) | 2, 'acknowledge: field 8, length-delimited');
});

test('JSON: unknown keys are ignored and null means absent', () => {
  const c = fromJson<Call>(CALL, { type: 'REVIVE', surprise: 1, framework_id: null, revive: { roles: ['a'], extra: true } });
  assert.equal(c, { type: 'REVIVE', revive: { roles: ['a'] } });
});

test('JSON: unknown enum values, wrong types, bad base64 and missing required fields are rejected with the path', () => {
  const cases: [unknown, string][] = [
    [{ type: 'LAUNCH_ROCKETS' }, "type: unknown Type value 'LAUNCH_ROCKETS'"],
    [{ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'x' } } }, "missing required field 'subscribe.framework_info.user'"],
    [{ type: 'KILL', kill: { task_id: { value: 5 } } }, 'kill.task_id.value: expected a string'],
    [{ type: 'ACKNOWLEDGE', acknowledge: { agent_id: { value: 'a' }, task_id: { value: 't' }, uuid: '***' } }, 'acknowledge.uuid: expected base64 bytes'],
    [{ type: 'DECLINE', decline: { offer_ids: { value: 'o' } } }, 'decline.offer_ids: expected an array'],
    [[1, 2], 'expected an object'],
  ];
  for (const [input, msg] of cases) {
    try {
      fromJson(CALL, input);
      assert.unreachable(JSON.stringify(input));
    } catch (e) {
      assert.ok((e as Error).message.includes(msg), `${(e as Error).message} should include ${msg}`);
    }
  }
});

test('JSON: 64-bit integers may arrive as numbers or decimal strings and come out as numbers', () => {
  const c = fromJson<Call>(CALL, { type: 'KILL', kill: { task_id: { value: 't' }, kill_policy: { grace_period: { nanoseconds: '3000000000' } } } });
  assert.is(c.kill!.kill_policy!.grace_period!.nanoseconds, 3_000_000_000);
});

test('malformed protobuf is a clear error, not a crash', () => {
  assert.throws(() => decode(CALL, Buffer.from([0x12, 0xff, 0xff, 0xff, 0x0f, 1])), /malformed Call/);
});

test('an Offers event with resources, ranges and attributes round-trips', () => {
  const ev: Event = {
    type: 'OFFERS',
    offers: { offers: [{
      id: { value: 'o1' }, framework_id: { value: 'f' }, agent_id: { value: 'a' }, hostname: 'h',
      url: { scheme: 'http', address: { hostname: 'h', ip: '127.0.0.1', port: 5051 }, path: '/slave(1)' },
      resources: [
        { name: 'cpus', type: 'SCALAR', scalar: { value: 1.5 }, allocation_info: { role: '*' } },
        { name: 'ports', type: 'RANGES', ranges: { range: [{ begin: 31000, end: 32000 }] }, allocation_info: { role: '*' } },
      ],
      attributes: [{ name: 'rack', type: 'TEXT', text: { value: 'r1' } }],
      executor_ids: [], allocation_info: { role: '*' },
    }] },
  };
  const back = decodeEvent(encodeEvent(ev));
  ev.offers!.offers![0]!.executor_ids = undefined; // empty repeated fields are absent after a round trip
  delete ev.offers!.offers![0]!.executor_ids;
  assert.equal(back, ev);
  assert.equal(decode(EVENT, encode(EVENT, { type: 'HEARTBEAT' })), { type: 'HEARTBEAT' });
});

test('health checks, checks, check statuses and URI options cross the wire with Mesos field numbers', () => {
  const task = {
    name: 't', task_id: { value: 't' }, agent_id: { value: 'a' },
    command: { value: 'run', uris: [{ value: 'https://h/x.tgz', executable: false, extract: true, cache: true, output_file: 'x.tgz' }] },
    health_check: { type: 'HTTP', interval_seconds: 2, http: { protocol: 'IPv4', scheme: 'https', port: 8443, path: '/h', statuses: [200, 204] } },
    check: { type: 'TCP', delay_seconds: 1, tcp: { port: 9000 } },
  };
  const bytes = encode('mesos.v1.TaskInfo', task);
  assert.equal(decode('mesos.v1.TaskInfo', bytes), task);
  // TaskInfo.check is field 13 (tag 13<<3|2 = 0x6a); TaskStatus.check_status is field 15 (0x7a).
  assert.ok(Buffer.from(bytes).includes(0x6a), 'TaskInfo.check is field 13');
  const status = { task_id: { value: 't' }, state: 'TASK_RUNNING', check_status: { type: 'TCP', tcp: { succeeded: true } } };
  const sb = Buffer.from(encode('mesos.v1.TaskStatus', status));
  assert.equal(decode('mesos.v1.TaskStatus', sb), status);
  assert.ok(sb.includes(0x7a), 'TaskStatus.check_status is field 15');
});

test.run();
