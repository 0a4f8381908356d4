/*
 * berth-probe — the agent's runner of COMMAND check probes.
 *
 * One long-lived process per agent (probe-runner.ts starts it when the first
 * task with a COMMAND check starts, and closes it when the last one stops).
 * The agent writes one record per probe to its stdin; it forks and execs the
 * probe and writes one result line per probe to its stdout. A probe then costs
 * one vfork of this small process and one exec — not a fork of the agent's large
 * Node process plus the pipes and objects of child_process.spawn (5–10 ms of
 * the agent's CPU per probe here, which at 500 tasks probed every few seconds
 * was most of the agent's time).
 *
 * Record (stdin): "<n>\n" then n bytes: NUL-terminated fields
 *   TAG, TIMEOUT_MS, UID (-1: unchanged), GID, CWD ("" : unchanged), NENV,
 *   NENV environment entries "K=V", then argv (argv[0] is looked up in $PATH).
 * Result (stdout), one line per record, fields separated by one space:
 *   "TAG exit CODE OUTPUT"     the probe exited by itself with CODE
 *   "TAG signal SIGNO OUTPUT"  the probe was ended by signal SIGNO
 *   "TAG timeout 0 OUTPUT"     TIMEOUT_MS passed first; its group was SIGKILLed
 *   "TAG error ERRNO MESSAGE"  the probe could not be started
 *   OUTPUT is the tail (at most 512 bytes) of the probe's merged stdout and
 *   stderr, with bytes below 0x20, '%' and 0x7f written as %XX.
 *
 * Invariants:
 *  - Nothing a probe started outlives it: each probe leads its own process
 *    group, which is SIGKILLed when the probe exits (a backgrounded child of a
 *    shell, say), when it times out, and when the server ends.
 *  - Exactly one result line per record (a bad record: an "error" line with
 *    tag "-" if even the tag is unreadable; the server then exits, since it can
 *    no longer find record boundaries).
 *  - Bounded: at most MAX_PROBES probes at once (more: an "error" line), a
 *    record of at most MAX_RECORD bytes, OUTPUT_TAIL bytes of output per probe.
 *  - The server exits on EOF of stdin (the agent closed it or died), killing
 *    the groups of probes still running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROBES 4096
#define MAX_RECORD (1 << 20)
#define MAX_FIELDS 4096
#define OUTPUT_TAIL 512
#define TAG_MAX 64
/* Records started per turn of the loop before exits are reaped again. */
#define RECORDS_PER_TURN 8

struct probe {
  pid_t pid;          /* 0: slot free */
  int out;            /* read end of the output pipe, -1 once closed */
  long long deadline; /* monotonic ms */
  int reported;       /* the result line was written (timeout), reaping only remains */
  char tag[TAG_MAX];
  char tail[OUTPUT_TAIL];
  size_t tail_len;
};

static struct probe probes[MAX_PROBES];
static int nprobes = 0; /* slots in use */

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes all of buf to stdout (blocking); the agent gone means nothing left to do. */
static void write_all(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(1, buf, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(0);
    }
    buf += w;
    len -= (size_t)w;
  }
}

static void report(const char *tag, const char *kind, long num, const char *out, size_t out_len) {
  char line[TAG_MAX + 64 + OUTPUT_TAIL * 3 + 2];
  int n = snprintf(line, sizeof line, "%s %s %ld ", tag, kind, num);
  size_t p = (size_t)n;
  for (size_t i = 0; i < out_len; i++) {
    unsigned char c = (unsigned char)out[i];
    if (c < 0x20 || c == '%' || c == 0x7f) p += (size_t)snprintf(line + p, 4, "%%%02X", c);
    else line[p++] = (char)c;
  }
  line[p++] = '\n';
  write_all(line, p);
}

static void keep_output(struct probe *pr, const char *buf, size_t n) {
  if (n >= OUTPUT_TAIL) {
    memcpy(pr->tail, buf + n - OUTPUT_TAIL, OUTPUT_TAIL);
    pr->tail_len = OUTPUT_TAIL;
    return;
  }
  if (pr->tail_len + n > OUTPUT_TAIL) {
    size_t drop = pr->tail_len + n - OUTPUT_TAIL;
    memmove(pr->tail, pr->tail + drop, pr->tail_len - drop);
    pr->tail_len -= drop;
  }
  memcpy(pr->tail + pr->tail_len, buf, n);
  pr->tail_len += n;
}

/* Reads what the probe's output pipe holds now; closes it at EOF. */
static void drain(struct probe *pr) {
  char buf[4096];
  while (pr->out >= 0) {
    ssize_t r = read(pr->out, buf, sizeof buf);
    if (r > 0) { keep_output(pr, buf, (size_t)r); continue; }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return;
    close(pr->out);
    pr->out = -1;
  }
}

static void release(struct probe *pr) {
  if (pr->out >= 0) close(pr->out);
  pr->out = -1;
  pr->pid = 0;
  nprobes--;
}

static struct probe *find(pid_t pid) {
  for (int i = 0; i < MAX_PROBES; i++) if (probes[i].pid == pid) return &probes[i];
  return NULL;
}

static void start(char **f, int nf) {
  const char *tag = f[0];
  if (nf < 7) { report(tag, "error", EINVAL, "short record", 12); return; }
  long timeout = strtol(f[1], NULL, 10);
  long uid = strtol(f[2], NULL, 10), gid = strtol(f[3], NULL, 10);
  const char *cwd = f[4];
  long nenv = strtol(f[5], NULL, 10);
  if (nenv < 0 || 6 + nenv >= nf) { report(tag, "error", EINVAL, "bad environment count", 21); return; }
  if (strlen(tag) >= TAG_MAX) { report("-", "error", EINVAL, "tag too long", 12); return; }
  if (nprobes >= MAX_PROBES) { report(tag, "error", EAGAIN, "too many probes at once", 23); return; }
  /* argv ends with the NULL split() leaves after the last field; env gets its own NULL. */
  static char *env[MAX_FIELDS];
  memcpy(env, f + 6, (size_t)nenv * sizeof *env);
  env[nenv] = NULL;
  char **argv = f + 6 + nenv;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) { report(tag, "error", errno, "pipe failed", 11); return; }
  sigset_t none;
  sigemptyset(&none);
  /* vfork: the child borrows our memory until its exec instead of copying our page tables and
   * faulting our pages in (on this VM each fault costs ~0.1 ms: a fork cost several times the
   * exec). The child makes system calls on its own stack (the setuid family is a direct syscall
   * in this single-threaded process) and, only on a failure path, one dprintf before _exit; its
   * signal dispositions and descriptors are its own, errno (shared) is read by us only when the
   * vfork itself failed. */
  pid_t pid = vfork();
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    int dn = open("/dev/null", O_RDONLY);
    if (dn >= 0) { dup2(dn, 0); if (dn != 0) close(dn); }
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    if (cwd[0] && chdir(cwd) < 0) { dprintf(2, "chdir %s: %s", cwd, strerror(errno)); _exit(126); }
    if (uid >= 0) {
      if (setgroups(0, NULL) < 0 && errno != EPERM) { dprintf(2, "setgroups: %s", strerror(errno)); _exit(126); }
      if (gid >= 0 && setgid((gid_t)gid) < 0) { dprintf(2, "setgid %ld: %s", gid, strerror(errno)); _exit(126); }
      if (setuid((uid_t)uid) < 0) { dprintf(2, "setuid %ld: %s", uid, strerror(errno)); _exit(126); }
    }
    execvpe(argv[0], argv, env);
    dprintf(2, "%s: %s", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  close(pipefd[1]);
  if (pid < 0) { int e = errno; close(pipefd[0]); report(tag, "error", e, "fork failed", 11); return; }
  /* Also from here: the child may not have run setpgid yet when a timeout kills its group. */
  setpgid(pid, pid);
  fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  for (int i = 0; i < MAX_PROBES; i++) {
    if (probes[i].pid != 0) continue;
    struct probe *pr = &probes[i];
    pr->pid = pid;
    pr->out = pipefd[0];
    pr->deadline = now_ms() + (timeout > 0 ? timeout : 1);
    pr->reported = 0;
    pr->tail_len = 0;
    snprintf(pr->tag, TAG_MAX, "%s", tag);
    nprobes++;
    return;
  }
}

/* Splits a record into its NUL-terminated fields; the slot after the last field is left NULL. */
static int split(char *rec, size_t len, char **f) {
  int nf = 0;
  size_t i = 0;
  while (i < len && nf < MAX_FIELDS - 1) {
    f[nf++] = rec + i;
    while (i < len && rec[i] != '\0') i++;
    i++;
  }
  f[nf] = NULL;
  return nf;
}

static void reap(void) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    struct probe *pr = find(pid);
    if (!pr) continue;
    kill(-pid, SIGKILL); /* whatever it left behind */
    drain(pr);
    if (!pr->reported) {
      if (WIFEXITED(st)) report(pr->tag, "exit", WEXITSTATUS(st), pr->tail, pr->tail_len);
      else report(pr->tag, "signal", WIFSIGNALED(st) ? WTERMSIG(st) : 0, pr->tail, pr->tail_len);
    }
    release(pr);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) { perror("berth-probe: signalfd"); return 1; }
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);

  static char in[MAX_RECORD + 32];
  size_t have = 0;
  static char *fields[MAX_FIELDS];
  static struct pollfd pfd[MAX_PROBES + 2];
  static struct probe *pidx[MAX_PROBES + 2];
  int eof = 0, backlog = 0;
  while (!eof) {
    int n = 0;
    pfd[n].fd = 0; pfd[n].events = POLLIN; pidx[n++] = NULL;
    pfd[n].fd = sfd; pfd[n].events = POLLIN; pidx[n++] = NULL;
    long long next = -1;
    for (int i = 0; i < MAX_PROBES && n - 2 < nprobes; i++) {
      struct probe *pr = &probes[i];
      if (pr->pid == 0) continue;
      if (pr->out >= 0) { pfd[n].fd = pr->out; pfd[n].events = POLLIN; pidx[n++] = pr; }
      else { pfd[n].fd = -1; pidx[n++] = pr; }
      if (!pr->reported && (next < 0 || pr->deadline < next)) next = pr->deadline;
    }
    int wait_ms = backlog ? 0 : -1;
    if (!backlog && next >= 0) { long long d = next - now_ms(); wait_ms = d < 0 ? 0 : (int)(d > 60000 ? 60000 : d); }
    int r = poll(pfd, (nfds_t)n, wait_ms);
    if (r < 0 && errno != EINTR) { perror("berth-probe: poll"); break; }
    if (r > 0) {
      for (int i = 2; i < n; i++) if (pidx[i] && pfd[i].fd >= 0 && pfd[i].revents) drain(pidx[i]);
      if (pfd[1].revents) {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) > 0) { /* coalesced: reap them all */ }
        reap();
      }
      if (pfd[0].revents && have < sizeof in) {
        ssize_t got = read(0, in + have, sizeof in - have);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) { eof = 1; break; }
        have += (size_t)got;
      }
    }
    /* A few records per turn, then back to poll: exits are reaped and reported between forks, so a
     * burst of records neither delays every result to the end of the burst nor runs past deadlines. */
    backlog = 0;
    for (int started = 0; !eof; started++) {
      if (started == RECORDS_PER_TURN) { backlog = 1; break; }
      char *nl = memchr(in, '\n', have < 24 ? have : 24);
      if (!nl) {
        if (have >= 24) { report("-", "error", EINVAL, "bad record header", 17); eof = 1; }
        break;
      }
      long len = strtol(in, NULL, 10);
      if (len <= 0 || len > MAX_RECORD) { report("-", "error", EINVAL, "bad record length", 17); eof = 1; break; }
      size_t head = (size_t)(nl - in) + 1;
      if (have < head + (size_t)len) break;
      if (in[head + (size_t)len - 1] != '\0') { report("-", "error", EINVAL, "record does not end with NUL", 28); eof = 1; break; }
      int nf = split(in + head, (size_t)len, fields);
      if (nf > 0) start(fields, nf);
      memmove(in, in + head + (size_t)len, have - head - (size_t)len);
      have -= head + (size_t)len;
    }
    long long t = now_ms();
    for (int i = 0; i < MAX_PROBES; i++) {
      struct probe *pr = &probes[i];
      if (pr->pid == 0 || pr->reported || pr->deadline > t) continue;
      kill(-pr->pid, SIGKILL);
      drain(pr);
      report(pr->tag, "timeout", 0, pr->tail, pr->tail_len);
      pr->reported = 1; /* reaped (and released) when SIGCHLD comes */
    }
  }
  for (int i = 0; i < MAX_PROBES; i++) if (probes[i].pid) kill(-probes[i].pid, SIGKILL);
  return 0;
}
