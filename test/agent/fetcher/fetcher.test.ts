/**
 * The fetcher against real files and a real HTTP server on loopback (port 0):
 * archives extracted with the system tools, executable and output_file, the
 * size and time bounds, the LRU cache, ownership by the task's user, and clear
 * errors that name the URI and the cause.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchUris, FetcherCache, FetchError, urisError, type URI } from '../../../agent/fetcher/index.js';
import { resolveUser } from '../../../agent/containerizer/linux/users.js';

interface Served { url: string; hits: Map<string, number>; close: () => Promise<void> }

/** Serves files of `dir` on 127.0.0.1:0; `/stall` never finishes its body; counts hits per path. */
async function serve(dir: string): Promise<Served> {
  const hits = new Map<string, number>();
  const srv = http.createServer((req, res) => {
    const path = decodeURIComponent(req.url ?? '/');
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === '/stall') { res.writeHead(200, { 'content-type': 'application/octet-stream' }); res.write('partial'); return; }
    const f = join(dir, path);
    if (!path.includes('..') && existsSync(f) && statSync(f).isFile()) { res.end(readFileSync(f)); return; }
    res.statusCode = 404; res.end('not found');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, hits,
    close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()); }),
  };
}

interface Env { dir: string; files: string; sandbox: string; srv: Served }

async function withEnv(fn: (e: Env) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-fetch-'));
  const files = join(dir, 'files');
  mkdirSync(join(files, 'app'), { recursive: true });
  writeFileSync(join(files, 'app', 'config.txt'), 'from the archive\n');
  writeFileSync(join(files, 'run.sh'), '#!/bin/sh\necho run\n');
  writeFileSync(join(files, 'big.bin'), Buffer.alloc(64 * 1024, 1));
  execFileSync('tar', ['-czf', join(files, 'app.tar.gz'), '-C', files, 'app']);
  execFileSync('tar', ['-cf', join(files, 'app.tar'), '-C', files, 'app']);
  execFileSync('zip', ['-q', '-r', join(files, 'app.zip'), 'app'], { cwd: files });
  const srv = await serve(files);
  try { await fn({ dir, files, sandbox: join(dir, 'sandbox'), srv }); } finally { await srv.close(); rmSync(dir, { recursive: true, force: true }); }
}

const failure = async (p: Promise<unknown>): Promise<FetchError> => {
  try { await p; } catch (e) { assert.instance(e, FetchError); return e as FetchError; }
  throw new Error('expected the fetch to fail');
};

test('a tar.gz over HTTP is extracted into the sandbox (and the archive kept, as Mesos)', () => withEnv(async ({ sandbox, srv }) => {
  await fetchUris([{ value: `${srv.url}/app.tar.gz` }], { sandbox });
  assert.is(readFileSync(join(sandbox, 'app', 'config.txt'), 'utf8'), 'from the archive\n');
  assert.ok(existsSync(join(sandbox, 'app.tar.gz')));
}));

test('tar and zip archives are extracted; extract: false leaves the archive alone', () => withEnv(async ({ dir, sandbox, srv }) => {
  await fetchUris([{ value: `${srv.url}/app.zip` }], { sandbox });
  assert.is(readFileSync(join(sandbox, 'app', 'config.txt'), 'utf8'), 'from the archive\n');
  const s2 = join(dir, 's2');
  await fetchUris([{ value: `${srv.url}/app.tar` }], { sandbox: s2 });
  assert.ok(existsSync(join(s2, 'app', 'config.txt')));
  const s3 = join(dir, 's3');
  await fetchUris([{ value: `${srv.url}/app.tar.gz`, extract: false }], { sandbox: s3 });
  assert.equal(readdirSync(s3), ['app.tar.gz']);
}));

test('executable gets mode 0755 and is not extracted; output_file names the file, in a subdirectory too', () => withEnv(async ({ sandbox, srv }) => {
  await fetchUris([
    { value: `${srv.url}/run.sh`, executable: true },
    { value: `${srv.url}/app.tar.gz`, output_file: 'pkg/bundle.tgz' },
  ], { sandbox });
  assert.is(statSync(join(sandbox, 'run.sh')).mode & 0o777, 0o755);
  assert.is(execFileSync(join(sandbox, 'run.sh')).toString(), 'run\n');
  assert.ok(existsSync(join(sandbox, 'pkg', 'app', 'config.txt')));
}));

test('file:// URIs and absolute paths are copied into the sandbox', () => withEnv(async ({ files, sandbox }) => {
  await fetchUris([{ value: `file://${files}/run.sh` }, { value: join(files, 'app.tar.gz') }], { sandbox });
  assert.is(readFileSync(join(sandbox, 'run.sh'), 'utf8'), '#!/bin/sh\necho run\n');
  assert.ok(existsSync(join(sandbox, 'app', 'config.txt')));
}));

test('a 404 fails the fetch naming the URI and the HTTP status; nothing half-written is left', () => withEnv(async ({ sandbox, srv }) => {
  const e = await failure(fetchUris([{ value: `${srv.url}/missing.tar.gz` }], { sandbox }));
  assert.is(e.message, `Failed to fetch '${srv.url}/missing.tar.gz': HTTP 404 Not Found`);
  assert.equal(readdirSync(sandbox), []);
}));

test('a download over the size limit fails and leaves nothing behind', () => withEnv(async ({ sandbox, srv }) => {
  const e = await failure(fetchUris([{ value: `${srv.url}/big.bin` }], { sandbox, limits: { maxBytes: 1000 } }));
  assert.match(e.message, /big\.bin.*over the limit of 1000 bytes/);
  assert.equal(readdirSync(sandbox), []);
}));

test('a download that stalls fails at the time limit', () => withEnv(async ({ sandbox, srv }) => {
  const e = await failure(fetchUris([{ value: `${srv.url}/stall`, output_file: 'x' }], { sandbox, limits: { timeoutMs: 300 } }));
  assert.match(e.message, /timed out after 0\.3 s/);
  assert.equal(readdirSync(sandbox), []);
}));

test('a fetch is aborted at once when its task is killed (the signal), leaving nothing behind', () => withEnv(async ({ sandbox, srv }) => {
  const ac = new AbortController();
  const p = fetchUris([{ value: `${srv.url}/stall`, output_file: 'x' }], { sandbox, signal: ac.signal });
  while (!srv.hits.get('/stall')) await new Promise((r) => setImmediate(r));
  ac.abort();
  const e = await failure(p);
  assert.match(e.message, /stall': aborted/);
  assert.equal(readdirSync(sandbox), []);
}));

test('an archive that unpacks a file over the extraction limit fails the fetch', () => withEnv(async ({ files, sandbox, srv }) => {
  // 64 KiB of ones compresses to a few hundred bytes: a tiny archive, a big file.
  execFileSync('tar', ['-czf', join(files, 'bomb.tgz'), '-C', files, 'big.bin']);
  const e = await failure(fetchUris([{ value: `${srv.url}/bomb.tgz` }], { sandbox, limits: { maxExtractedFileBytes: 10_000 } }));
  assert.match(e.message, /bomb\.tgz': tar stopped: an extracted file is larger than the limit of 10000 bytes/);
}));

test('a link planted by one archive is never followed by the next URI\'s placement', () => withEnv(async ({ dir, files, sandbox, srv }) => {
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  const evil = join(dir, 'evil');
  mkdirSync(evil);
  symlinkSync(outside, join(evil, 'escape'));
  execFileSync('tar', ['-czf', join(files, 'evil.tgz'), '-C', evil, 'escape']);
  const e = await failure(fetchUris([
    { value: `${srv.url}/evil.tgz` },
    { value: `${srv.url}/run.sh`, output_file: 'escape/run.sh' },
  ], { sandbox }));
  assert.match(e.message, /goes through a symbolic link/);
  assert.equal(readdirSync(outside), [], 'nothing written outside the sandbox');
  const e2 = await failure(fetchUris([{ value: `${srv.url}/run.sh`, output_file: 'escape' }], { sandbox }));
  assert.match(e2.message, /'escape' is a symbolic link/);
}));

test('a corrupt archive fails the fetch with the tool\'s error', () => withEnv(async ({ files, sandbox, srv }) => {
  writeFileSync(join(files, 'bad.tar.gz'), 'not gzip at all');
  const e = await failure(fetchUris([{ value: `${srv.url}/bad.tar.gz` }], { sandbox }));
  assert.match(e.message, /bad\.tar\.gz': tar failed/);
}));

test('with cache: true a URI is downloaded once; the cache is bounded and evicts the least recently used', () => withEnv(async ({ dir, files, srv }) => {
  writeFileSync(join(files, 'a.bin'), Buffer.alloc(400, 2));
  writeFileSync(join(files, 'b.bin'), Buffer.alloc(400, 3));
  const cache = new FetcherCache(join(dir, 'cache'), 1000);
  const get = (name: string, n: number): Promise<void> => fetchUris([{ value: `${srv.url}/${name}`, cache: true }], { sandbox: join(dir, `s-${name}-${n}`), cache });
  await get('a.bin', 1);
  await get('a.bin', 2);
  assert.is(srv.hits.get('/a.bin'), 1, 'second fetch served from the cache');
  assert.is(readFileSync(join(dir, 's-a.bin-2', 'a.bin')).length, 400);
  await get('b.bin', 1);
  assert.is(cache.size, 800);
  writeFileSync(join(files, 'c.bin'), Buffer.alloc(400, 4));
  await get('a.bin', 3); // a becomes most recently used
  await get('c.bin', 1); // evicts b
  assert.is(cache.size, 800);
  assert.is(readdirSync(join(dir, 'cache')).length, 2, 'evicted files are deleted');
  await get('a.bin', 4);
  await get('b.bin', 2);
  assert.is(srv.hits.get('/a.bin'), 1);
  assert.is(srv.hits.get('/b.bin'), 2);
  // Concurrent fetches of the same URI download it once.
  writeFileSync(join(files, 'd.bin'), Buffer.alloc(10, 5));
  await Promise.all([1, 2, 3].map((n) => get('d.bin', n)));
  assert.is(srv.hits.get('/d.bin'), 1);
}));

test('a file larger than the whole cache is fetched uncached', () => withEnv(async ({ dir, srv }) => {
  const cache = new FetcherCache(join(dir, 'cache'), 1000);
  await fetchUris([{ value: `${srv.url}/big.bin`, cache: true }], { sandbox: join(dir, 's'), cache });
  assert.is(statSync(join(dir, 's', 'big.bin')).size, 64 * 1024);
  assert.is(cache.size, 0);
}));

const invalid: [string, URI[], RegExp][] = [
  ['unsupported scheme', [{ value: 'ftp://example.com/x.tgz' }], /uris\[0\]\.value: scheme 'ftp' is not supported/],
  ['relative path', [{ value: 'x/y.tgz' }], /uris\[0\]\.value 'x\/y\.tgz' is neither a URL nor an absolute path/],
  ['escaping output_file', [{ value: '/etc/hosts', output_file: '../../x' }], /uris\[0\]\.output_file must be a relative path inside the sandbox/],
  ['absolute output_file', [{ value: '/etc/hosts', output_file: '/tmp/x' }], /uris\[0\]\.output_file/],
  ['no file name', [{ value: 'http://example.com/' }], /has no file name: give output_file/],
  ['remote file host', [{ value: 'file://otherhost/etc/hosts' }], /file URIs must name a local file/],
];
for (const [name, uris, re] of invalid) {
  test(`invalid URIs are refused before anything is touched: ${name}`, async () => {
    const err = urisError(uris);
    assert.ok(err && re.test(err), `got ${err}`);
    const sandbox = join(tmpdir(), `berth-never-${process.pid}-${name.replace(/\W/g, '')}`);
    const e = await failure(fetchUris(uris, { sandbox }));
    assert.is(e.code, 'INVALID');
    assert.not.ok(existsSync(sandbox));
  });
}

const root = process.getuid?.() === 0;
const nobodyUser = root ? await resolveUser('nobody') : undefined;
const ownerSkip = !root ? 'needs root to switch users' : !nobodyUser ? 'no user nobody' : undefined;
const ownerName = 'root: fetched and extracted files are owned by the task\'s user, who cannot fetch a file it may not read';
(ownerSkip ? test.skip : test)(ownerSkip ? `${ownerName} (SKIPPED: ${ownerSkip})` : ownerName, async () => {
  const nobody = nobodyUser!;
  await withEnv(async ({ dir, files, sandbox, srv }) => {
    // The work dir above the sandbox stays private (0700, root): extraction as the user must not need it.
    assert.is(statSync(dir).mode & 0o777, 0o700);
    await fetchUris([{ value: `${srv.url}/app.tar.gz` }, { value: `${srv.url}/app.zip`, output_file: 'z/app.zip' }], { sandbox, user: nobody });
    for (const p of ['', 'app.tar.gz', 'app', 'app/config.txt', 'z', 'z/app/config.txt']) {
      const st = statSync(join(sandbox, p));
      assert.equal([p, st.uid, st.gid], [p, nobody.uid, nobody.gid]);
    }
    // A local file is read with the user's permissions: here the user cannot even reach it.
    const e = await failure(fetchUris([{ value: `${files}/run.sh` }], { sandbox: join(dir, 's2'), user: nobody }));
    assert.match(e.message, /Permission denied/);
    assert.not.ok(existsSync(join(dir, 's2', 'run.sh')));
    // ... and where it can reach the directory, a file only root may read stays out of reach.
    chmodSync(dir, 0o755); chmodSync(files, 0o755);
    writeFileSync(join(files, 'secret'), 'root only');
    chmodSync(join(files, 'secret'), 0o600);
    const e2 = await failure(fetchUris([{ value: `${files}/secret` }], { sandbox: join(dir, 's3'), user: nobody }));
    assert.match(e2.message, /Permission denied/);
    await fetchUris([{ value: `${files}/run.sh` }], { sandbox: join(dir, 's4'), user: nobody });
    assert.is(statSync(join(dir, 's4', 'run.sh')).uid, nobody.uid);
  });
});

test.run();
