/*
 * berth-shim — the per-container supervisor of Berth's linux containerizer.
 *
 * One short-lived C process per container, so a launch costs one fork+exec from
 * the agent plus one clone here (a Node process per task would cost tens of ms).
 *
 * Process layout:
 *
 *   agent (node) ──spawn, detached──▶ shim supervisor (host namespaces, NOT in the
 *                                      container's cgroups, session leader)
 *                                        └─clone(NEWPID|NEWNS|NEWUTS|NEWIPC[|NEWNET][|NEWUSER])
 *                                            ▶ task: pid 1 of its own pid namespace
 *
 * Invariants:
 *  - The task joins its cgroups before it runs anything of its own: the
 *    supervisor writes the child's pid to every cgroup.procs file (and the
 *    uid/gid maps) while the child blocks on the sync pipe; only then may the
 *    child go on. A failed cgroup write kills the child before it ever ran.
 *  - The supervisor stays outside the container's cgroups, so destroying the
 *    cgroup (freeze + SIGKILL every pid) never kills the supervisor, and an OOM
 *    kill inside the container can never take the exit record with it.
 *  - The supervisor does not depend on the agent: it ignores SIGPIPE/SIGHUP,
 *    reports launch success on fd 3 once and closes it, so an agent crash
 *    changes nothing for the task. It writes RUN.exit atomically (write
 *    RUN.exit.tmp, rename; RUN is the -r path, one per container in a shared
 *    directory) as {"exitCode": N|null, "signal": "SIGX"|null} and exits; the
 *    record is the single source of truth for how the task ended.
 *  - When the task (pid 1 of its namespace) ends, the kernel kills every other
 *    process of that namespace, including ones that called setsid().
 *
 * Usage:
 *   berth-shim -r RUN -s SANDBOX [-c CGROUP_PROCS_FILE]... [-h HOSTNAME]
 *              [-u UID -g GID] [-G gid,gid,...] [-U HOSTUID:COUNT] [-n] [-t] [-m]
 *              [-k CAPMASK_HEX] [-o UID:GID] -e EXECUTABLE -- ARGV0 [ARGS...]
 *   The task's environment is the shim's own environment.
 *   -r: the exit record is RUN.exit (its directory must exist).
 *   -m: create the sandbox (mkdir -p, mode 0777 & ~umask) before anything
 *       else; stdout/stderr are always created there (O_CREAT|O_APPEND). Done
 *       here, the agent's process makes none of a launch's files, and they
 *       exist before "ok" is reported.
 *   -U: run in a new user namespace mapping ids 0..COUNT-1 to HOSTUID..;
 *       -u/-g are then ids INSIDE the namespace.
 *   -o: chown the sandbox and its stdout/stderr to this host owner (the
 *       task's user, or the mapped root of its user namespace).
 *   fd 3 (optional): receives "ok <supervisor-pid> <task-host-pid> <supervisor-starttime>\n" or
 *   "err <message>\n", then is closed.
 *   -P: plain (posix containerizer): no namespaces, no cgroups, no privilege
 *       change; the task is a plain child in the supervisor's session, and a
 *       failed exec is the task's exit 127 (as a shell reports it), not a
 *       launch error.
 *   -S: the task is a shell command: exit status 129..159 is recorded as
 *       signal 1..31 (how a shell reports its child's death by signal).
 *
 * Server mode: berth-shim --server
 *   A long-lived process the agent starts once, so neither the agent's event
 *   loop nor a shell forks per task. It reads launch records on stdin, each
 *   "<n>\0" then n NUL-terminated fields: TAG, NENV, NENV environment entries,
 *   then the arguments above (options, --, argv). Per record it starts one
 *   supervisor, `berth-shim --tag TAG OPTIONS -- ARGV` with the record's
 *   environment (a spawned shim that reports with the tag and enters the
 *   sandbox itself), and reports on stdout, one line each (single writes,
 *   atomic on a pipe):
 *     "ok TAG <supervisor-pid> <task-host-pid> <supervisor-starttime>"
 *     "err TAG <message>"
 *     "exit TAG"   (the supervisor was reaped: its exit record is written)
 *   The supervisor is a vfork + exec of this (static, where it links) binary,
 *   not a fork of the server: on hosts where page-table work is dear (VMs) a
 *   fork's copy-on-write faults cost several times a small exec. Its /proc
 *   cmdline names its run path like any spawned shim's. On EOF the server
 *   exits at once; running supervisors are reparented and go on (they never
 *   depend on the server or the agent).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <time.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CGROUPS 16
#define MAX_GROUPS 64

extern char **environ;

static int status_fd = -1;
/* Server mode: the launch's tag, echoed in every report line. */
static const char *report_tag = NULL;

/* Reports a launch failure to the agent (if it still listens) and exits. */
static void fail(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  if (status_fd >= 0) {
    char out[800];
    int m = report_tag ? snprintf(out, sizeof out, "err %.200s %.*s\n", report_tag, n, buf)
                       : snprintf(out, sizeof out, "err %.*s\n", n, buf);
    if (m > (int)sizeof out - 1) m = (int)sizeof out - 1;
    if (write(status_fd, out, (size_t)m) < 0) { /* agent gone: nothing to do */ }
  } else {
    fprintf(stderr, "berth-shim: %.*s\n", n, buf);
  }
  _exit(125);
}

static int write_file(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = strlen(data);
  ssize_t w = write(fd, data, len);
  int saved = errno;
  close(fd);
  errno = saved;
  return w == (ssize_t)len ? 0 : -1;
}

static const char *signame(int sig) {
  static char buf[32];
  const char *abbrev = sigabbrev_np(sig);
  if (abbrev) snprintf(buf, sizeof buf, "SIG%s", abbrev);
  else snprintf(buf, sizeof buf, "SIG%d", sig);
  return buf;
}

struct opts {
  const char *run, *sandbox, *hostname, *exe;
  const char *cgroups[MAX_CGROUPS];
  int n_cgroups;
  uid_t uid;
  gid_t gid;
  int have_ids;
  gid_t groups[MAX_GROUPS];
  int n_groups;
  long userns_host, userns_count; /* userns_count > 0: new user namespace */
  long owner_uid, owner_gid;      /* -o; -1 = leave ownership alone */
  int netns, private_tmp, plain, shell_status, make_sandbox;
  uint64_t keep_caps;
  char **argv;
};

/* Child side of the clone: runs inside the new namespaces as pid 1. Every
 * failure is written to err_fd (close-on-exec, so a successful exec leaves
 * the supervisor reading EOF) and ends the child with 127. */
static void child_fail(int err_fd, const char *what) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "%s: %s", what, strerror(errno));
  if (write(err_fd, buf, (size_t)n) < 0) { /* supervisor gone */ }
  _exit(127);
}

/* Child side of a plain launch, a vfork child sharing the supervisor's memory
 * until exec: only async-signal-safe calls, no stdio, no malloc, and no
 * writes to memory but its own stack frame. Its signal dispositions are its
 * own (vfork shares the address space, not the signal table). */
static void run_plain(const struct opts *o, int err_fd, int out_fd, int errf_fd, int sandbox_fd) {
  /* Our own fd table (vfork shares memory, not files): the report channel is not the task's. */
  if (status_fd > 2) close(status_fd);
  /* Its own process group: the supervisor kills what is left of it when the task ends. */
  if (setpgid(0, 0) < 0) child_fail(err_fd, "setpgid");
  if (fchdir(sandbox_fd) < 0) child_fail(err_fd, "chdir sandbox");
  int dn = open("/dev/null", O_RDONLY);
  if (dn < 0 || dup2(dn, 0) < 0) child_fail(err_fd, "stdin /dev/null");
  if (dup2(out_fd, 1) < 0 || dup2(errf_fd, 2) < 0) child_fail(err_fd, "redirect stdout/stderr");
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &dfl, NULL);
  sigaction(SIGHUP, &dfl, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* From here a failure is the task's: EOF on err_fd (close-on-exec or
   * exit alike) and exit status 127/126, as a shell reports it. out_fd,
   * errf_fd, sandbox_fd and dn above 2 are close-on-exec or closed by exec's
   * dup2 targets; dn is closed explicitly. */
  if (dn > 2) close(dn);
  close(err_fd);
  execvpe(o->exe, o->argv, environ);
  int e = errno;
  const char *msg = strerror(e);
  struct iovec v[5] = { { (void *)"berth-shim: ", 12 }, { (void *)o->exe, strlen(o->exe) }, { (void *)": ", 2 }, { (void *)msg, strlen(msg) }, { (void *)"\n", 1 } };
  if (writev(2, v, 5) < 0) { /* nowhere to report */ }
  _exit(e == ENOENT ? 127 : 126);
}

static void run_child(const struct opts *o, int sync_fd, int err_fd, int out_fd, int errf_fd, int sandbox_fd) {
  char c;
  /* Block until the supervisor has put us into our cgroups (and wrote the id
   * maps): nothing of the task's runs outside its limits. */
  if (read(sync_fd, &c, 1) != 1) _exit(127);
  close(sync_fd);

  if (o->plain) {
    if (fchdir(sandbox_fd) < 0) child_fail(err_fd, "chdir sandbox");
    close(sandbox_fd);
    int dn = open("/dev/null", O_RDONLY);
    if (dn < 0 || dup2(dn, 0) < 0) child_fail(err_fd, "stdin /dev/null");
    if (dup2(out_fd, 1) < 0 || dup2(errf_fd, 2) < 0) child_fail(err_fd, "redirect stdout/stderr");
    if (dn > 2) close(dn);
    close(out_fd);
    close(errf_fd);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* From here a failure is the task's: the supervisor sees EOF (close-on-exec
     * or exit alike) and records exit status 127, as a shell would. */
    close(err_fd);
    execvpe(o->exe, o->argv, environ);
    int e = errno;
    dprintf(2, "berth-shim: %s: %s\n", o->exe, strerror(e));
    _exit(e == ENOENT ? 127 : 126);
  }

  if (o->userns_count > 0) {
    /* We are uid 0 of the new user namespace now that the maps exist. */
    if (setresgid(0, 0, 0) < 0) child_fail(err_fd, "setresgid(0) in user namespace");
    if (setresuid(0, 0, 0) < 0) child_fail(err_fd, "setresuid(0) in user namespace");
  }
  /* Mounts made here must not propagate back to the host. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail(err_fd, "make / private");
  /* A fresh /proc so the task (and `ps`) sees only its own pid namespace. */
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    child_fail(err_fd, "mount /proc");
  if (o->private_tmp && mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
    child_fail(err_fd, "mount private /tmp");
  if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0) child_fail(err_fd, "sethostname");

  /* fchdir through a descriptor opened by the host-root supervisor: root of a
   * user namespace may not be able to traverse the sandbox's parent dirs. */
  if (fchdir(sandbox_fd) < 0) child_fail(err_fd, "chdir sandbox");
  close(sandbox_fd);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull < 0 || dup2(devnull, 0) < 0) child_fail(err_fd, "stdin /dev/null");
  if (dup2(out_fd, 1) < 0 || dup2(errf_fd, 2) < 0) child_fail(err_fd, "redirect stdout/stderr");
  if (devnull > 2) close(devnull);
  close(out_fd);
  close(errf_fd);

  /* Capability bounding set: keep only the configured ones. Must happen while
   * we still hold CAP_SETPCAP, i.e. before changing uid. */
  int last_cap = 40;
  {
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char b[16] = {0};
      if (read(fd, b, sizeof b - 1) > 0) last_cap = atoi(b);
      close(fd);
    }
  }
  for (int cap = 0; cap <= last_cap && cap < 64; cap++) {
    if (o->keep_caps & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) child_fail(err_fd, "drop bounding set");
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);

  if (o->have_ids) {
    if (setgroups((size_t)o->n_groups, o->groups) < 0) child_fail(err_fd, "setgroups");
    if (setresgid(o->gid, o->gid, o->gid) < 0) child_fail(err_fd, "setgid");
    if (setresuid(o->uid, o->uid, o->uid) < 0) child_fail(err_fd, "setuid");
  }

  /* Inheritable and (for root) effective/permitted sets: clear what is not
   * kept, so a root task's exec gains only bounding ∩ keep. A non-root uid
   * already lost all capabilities at setresuid. */
  {
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) == 0) {
      uint32_t lo = (uint32_t)(o->keep_caps & 0xffffffffu), hi = (uint32_t)(o->keep_caps >> 32);
      data[0].inheritable = 0; data[1].inheritable = 0;
      data[0].effective &= lo; data[1].effective &= hi;
      data[0].permitted &= lo; data[1].permitted &= hi;
      if (syscall(SYS_capset, &hdr, data) < 0) child_fail(err_fd, "capset");
    }
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(err_fd, "no_new_privs");

  /* Restore default signal dispositions the supervisor changed. */
  signal(SIGPIPE, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  execvpe(o->exe, o->argv, environ);
  child_fail(err_fd, o->exe);
}

static void parse_caps(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 16);
  if (errno || *end) fail("bad capability mask '%s'", s);
  *out = (uint64_t)v;
}

static long parse_num(const char *s, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < 0) fail("bad %s '%s'", what, s);
  return v;
}

/* /proc/self/stat field 22: lets the agent tell this process from a later one with the same pid. */
static unsigned long long self_starttime(void) {
  char buf[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  p += 2; /* field 3 */
  for (int field = 3; field < 22 && p; field++) {
    p = strchr(p, ' ');
    if (p) p++;
  }
  return p ? strtoull(p, NULL, 10) : 0;
}

/* `shell_status`: the task is a shell, which reports a child's death by signal N as exit status
 * 128+N; read 129..159 as that signal (the posix containerizer's rule for shell commands). */
static void write_exit(const char *run, int status, int shell_status, int clean) {
  char tmp[4096], dst[4096], body[160];
  int n;
  /* "clean": the supervisor saw every process of the task's tree gone (see sweep_tree). */
  const char *tail = clean ? ",\"clean\":true}\n" : "}\n";
  if (shell_status && WIFEXITED(status) && WEXITSTATUS(status) > 128 && WEXITSTATUS(status) < 160)
    n = snprintf(body, sizeof body, "{\"exitCode\":null,\"signal\":\"%s\"%s", signame(WEXITSTATUS(status) - 128), tail);
  else if (WIFEXITED(status)) n = snprintf(body, sizeof body, "{\"exitCode\":%d,\"signal\":null%s", WEXITSTATUS(status), tail);
  else if (WIFSIGNALED(status)) n = snprintf(body, sizeof body, "{\"exitCode\":null,\"signal\":\"%s\"%s", signame(WTERMSIG(status)), tail);
  else n = snprintf(body, sizeof body, "{\"exitCode\":null,\"signal\":null%s", tail);
  snprintf(tmp, sizeof tmp, "%s.exit.tmp", run);
  snprintf(dst, sizeof dst, "%s.exit", run);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t w = write(fd, body, (size_t)n);
  close(fd);
  if (w == n) rename(tmp, dst);
}

/* mkdir -p: creates `path` and any missing parent (racing creators are fine: EEXIST). */
static int mkdir_p(char *path) {
  if (mkdir(path, 0777) == 0 || errno == EEXIST) return 0;
  if (errno != ENOENT) return -1;
  char *slash = strrchr(path, '/');
  if (!slash || slash == path) return -1;
  *slash = 0;
  int r = mkdir_p(path);
  *slash = '/';
  if (r < 0) return -1;
  return mkdir(path, 0777) == 0 || errno == EEXIST ? 0 : -1;
}

/* SIGKILLs every live child of ours (descendants of the task re-parented to us): the rare case
 * of processes that left the task's process group (setsid, setpgid). Only then is /proc read. */
static void kill_children(void) {
  DIR *d = opendir("/proc");
  if (!d) return;
  pid_t self = getpid();
  struct dirent *e;
  char path[300], buf[512];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    /* Field 4 (ppid) follows "pid (comm) state "; comm may hold spaces: parse from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] == 0 || p[2] == 0) continue;
    char *q = strchr(p + 3, ' ');
    if (!q) continue;
    if ((pid_t)strtol(q + 1, NULL, 10) == self) kill((pid_t)atoi(e->d_name), SIGKILL);
  }
  closedir(d);
}

/* Plain containers: the supervisor is a child subreaper, so every descendant of the task that
 * outlives its parent is re-parented to us, and the task leads its own process group, which was
 * SIGKILLed when the task ended. Reaps what is left, killing children that left the group; returns
 * 1 once we have no child at all: then no process of the task's tree is alive anywhere (a live
 * descendant always has a live ancestor chain up to us), and the agent need not scan /proc for
 * leftovers. Returns 0 if some child survives ~50 ms of that (unkillable, e.g. in D state): the
 * agent then sweeps the session as it does for other engines. */
static int sweep_tree(void) {
  for (int round = 0; round < 50; round++) {
    for (;;) {
      int st;
      pid_t r = waitpid(-1, &st, WNOHANG);
      if (r > 0) continue;
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == ECHILD) return 1;
      break;
    }
    /* Group members die within a few ms of the group kill; what lives on after that left the group. */
    if (round >= 3) kill_children();
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
  }
  return 0;
}

/* The supervisor: parses the options, starts the task, reports, waits, records the exit.
 * Never returns. `cd_sandbox`: enter the sandbox first (server mode; spawn sets cwd). */
static void supervise(int argc, char **argv, int cd_sandbox) {
  struct opts o;
  memset(&o, 0, sizeof o);
  o.hostname = NULL;
  o.owner_uid = o.owner_gid = -1;

  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);

  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { i++; break; }
    if (a[0] != '-' || a[1] == 0 || a[2] != 0) fail("unknown argument '%s'", a);
    char f = a[1];
    if (f == 'n') { o.netns = 1; continue; }
    if (f == 't') { o.private_tmp = 1; continue; }
    if (f == 'P') { o.plain = 1; continue; }
    if (f == 'S') { o.shell_status = 1; continue; }
    if (f == 'm') { o.make_sandbox = 1; continue; }
    if (i + 1 >= argc) fail("-%c needs a value", f);
    const char *v = argv[++i];
    switch (f) {
      case 'r': o.run = v; break;
      case 's': o.sandbox = v; break;
      case 'h': o.hostname = v; break;
      case 'e': o.exe = v; break;
      case 'c':
        if (o.n_cgroups >= MAX_CGROUPS) fail("too many cgroups");
        o.cgroups[o.n_cgroups++] = v;
        break;
      case 'u': o.uid = (uid_t)parse_num(v, "uid"); o.have_ids |= 1; break;
      case 'g': o.gid = (gid_t)parse_num(v, "gid"); o.have_ids |= 2; break;
      case 'G': {
        char *copy = strdup(v), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
          if (o.n_groups >= MAX_GROUPS) fail("too many groups");
          o.groups[o.n_groups++] = (gid_t)parse_num(t, "gid");
        }
        free(copy);
        break;
      }
      case 'U': {
        char *colon = strchr(v, ':');
        if (!colon) fail("-U wants HOSTUID:COUNT");
        *colon = 0;
        o.userns_host = parse_num(v, "host uid");
        o.userns_count = parse_num(colon + 1, "uid count");
        if (o.userns_count <= 0) fail("uid count must be > 0");
        break;
      }
      case 'k': parse_caps(v, &o.keep_caps); break;
      case 'o': {
        char *copy = strdup(v), *colon = strchr(copy, ':');
        if (!colon) fail("-o wants UID:GID");
        *colon = 0;
        o.owner_uid = parse_num(copy, "owner uid");
        o.owner_gid = parse_num(colon + 1, "owner gid");
        free(copy);
        break;
      }
      default: fail("unknown option -%c", f);
    }
  }
  if (!o.run || !o.sandbox || !o.exe) fail("-r, -s and -e are required");
  if (i >= argc) fail("missing task argv after --");
  if (o.have_ids != 0 && o.have_ids != 3) fail("-u and -g go together");
  o.have_ids = o.have_ids == 3;
  o.argv = &argv[i];

  /* Detached from the agent's session (the agent spawns us detached; this is
   * belt and braces when started otherwise). */
  setsid();
  if (o.make_sandbox) {
    char *copy = strdup(o.sandbox);
    if (!copy || mkdir_p(copy) < 0) fail("create sandbox %s: %s", o.sandbox, strerror(errno));
    free(copy);
  }
  if (cd_sandbox && chdir(o.sandbox) < 0) fail("chdir %s: %s", o.sandbox, strerror(errno));

  char path[4096];
  snprintf(path, sizeof path, "%s/stdout", o.sandbox);
  int out_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd < 0) fail("open %s: %s", path, strerror(errno));
  snprintf(path, sizeof path, "%s/stderr", o.sandbox);
  int errf_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (errf_fd < 0) fail("open %s: %s", path, strerror(errno));

  int sandbox_fd = open(o.sandbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sandbox_fd < 0) fail("open sandbox %s: %s", o.sandbox, strerror(errno));

  if (o.owner_uid >= 0) {
    /* The sandbox belongs to the task's (host-mapped) user. */
    if (fchown(sandbox_fd, (uid_t)o.owner_uid, (gid_t)o.owner_gid) < 0 ||
        fchown(out_fd, (uid_t)o.owner_uid, (gid_t)o.owner_gid) < 0 ||
        fchown(errf_fd, (uid_t)o.owner_uid, (gid_t)o.owner_gid) < 0)
      fail("chown sandbox to %ld:%ld: %s", o.owner_uid, o.owner_gid, strerror(errno));
    /* Private to its task's user (and group): 0750, its output 0640. */
    if (fchmod(sandbox_fd, 0750) < 0 || fchmod(out_fd, 0640) < 0 || fchmod(errf_fd, 0640) < 0)
      fail("chmod sandbox: %s", strerror(errno));
  }

  int sync_p[2], err_p[2];
  if (pipe2(sync_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0) fail("pipe: %s", strerror(errno));

  long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (o.netns) flags |= CLONE_NEWNET;
  if (o.userns_count > 0) flags |= CLONE_NEWUSER;
  if (o.plain) {
    if (o.n_cgroups > 0 || o.userns_count > 0 || o.netns || o.have_ids) fail("-P takes no cgroups, namespaces or ids");
    flags = SIGCHLD;
  }

  /* Plain (posix) containers have nothing to set up between creation and
   * exec, so the child is a vfork: it borrows our address space until its
   * exec instead of copying our page tables and faulting in our pages, which
   * is most of a launch's cost where page-table work is dear (VMs). The
   * child runs only async-signal-safe calls (run_plain) and exec/_exit.
   * Otherwise: clone with a NULL stack behaves like fork (copy-on-write
   * stack) but lets us create all namespaces at once, the user namespace
   * first, so it owns the others. */
  if (o.plain && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) fail("become subreaper: %s", strerror(errno));
  pid_t child = o.plain ? vfork() : (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, 0);
  if (child < 0) fail("clone: %s", strerror(errno));
  if (child == 0 && o.plain) run_plain(&o, err_p[1], out_fd, errf_fd, sandbox_fd);
  if (child == 0) {
    close(sync_p[1]);
    close(err_p[0]);
    if (status_fd >= 0) close(status_fd);
    run_child(&o, sync_p[0], err_p[1], out_fd, errf_fd, sandbox_fd);
    _exit(127);
  }
  close(sync_p[0]);
  close(err_p[1]);
  close(out_fd);
  close(errf_fd);
  close(sandbox_fd);

  char pidbuf[32];
  snprintf(pidbuf, sizeof pidbuf, "%d", (int)child);
  for (int c = 0; c < o.n_cgroups; c++) {
    if (write_file(o.cgroups[c], pidbuf) < 0) {
      int e = errno;
      kill(child, SIGKILL);
      waitpid(child, NULL, 0);
      errno = e;
      fail("join cgroup %s: %s", o.cgroups[c], strerror(e));
    }
  }
  if (o.userns_count > 0) {
    char map[64];
    snprintf(map, sizeof map, "0 %ld %ld\n", o.userns_host, o.userns_count);
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)child);
    int e1 = write_file(path, map);
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)child);
    int e2 = e1 == 0 ? write_file(path, map) : -1;
    if (e1 < 0 || e2 < 0) {
      int e = errno;
      kill(child, SIGKILL);
      waitpid(child, NULL, 0);
      fail("write id maps: %s", strerror(e));
    }
  }
  if (!o.plain && write(sync_p[1], "x", 1) != 1) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    fail("sync child: %s", strerror(errno));
  }
  close(sync_p[1]);

  /* EOF on err pipe = exec succeeded (close-on-exec); data = setup failed. */
  char ebuf[300];
  ssize_t en;
  do en = read(err_p[0], ebuf, sizeof ebuf - 1); while (en < 0 && errno == EINTR);
  close(err_p[0]);
  if (en > 0) {
    ebuf[en] = 0;
    waitpid(child, NULL, 0);
    fail("%s", ebuf);
  }

  if (status_fd >= 0) {
    char ok[320];
    int n = report_tag ? snprintf(ok, sizeof ok, "ok %.200s %d %d %llu\n", report_tag, (int)getpid(), (int)child, self_starttime())
                       : snprintf(ok, sizeof ok, "ok %d %d %llu\n", (int)getpid(), (int)child, self_starttime());
    if (write(status_fd, ok, (size_t)n) < 0) { /* agent gone: the task runs on */ }
    close(status_fd);
    status_fd = -1;
  }
  /* Nothing else of ours stays open: the agent may die at any time. */
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) { dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2); if (devnull > 2) close(devnull); }

  int status = 0, clean = 0;
  if (o.plain) {
    /* Learn of the task's end without reaping it: while its zombie exists its pid still names its
     * process group, so the kill below cannot reach an unrelated group that reused the number. */
    siginfo_t si;
    while (waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) { }
    kill(-child, SIGKILL);
  }
  for (;;) {
    pid_t r = waitpid(child, &status, 0);
    if (r == child) break;
    if (r < 0 && errno != EINTR) { status = 0; break; }
  }
  if (o.plain) clean = sweep_tree();
  write_exit(o.run, status, o.shell_status, clean);
  _exit(0);
}

/* ---- server mode ---------------------------------------------------------- */

static int sigchld_pipe[2] = { -1, -1 };
/* This binary, for the supervisors the server starts. */
static char self_exe[4096];

static void on_sigchld(int sig) {
  (void)sig;
  int saved = errno;
  if (write(sigchld_pipe[1], "c", 1) < 0) { /* full: a wake-up is pending anyway */ }
  errno = saved;
}

struct live { pid_t pid; char *tag; };
static struct live *lives;
static size_t n_lives, cap_lives;

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return; }
    p += w; n -= (size_t)w;
  }
}

static void reap(void) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (size_t i = 0; i < n_lives; i++) {
      if (lives[i].pid != pid) continue;
      char line[300];
      int m = snprintf(line, sizeof line, "exit %.200s\n", lives[i].tag);
      write_all(1, line, (size_t)m);
      free(lives[i].tag);
      lives[i] = lives[--n_lives];
      break;
    }
  }
}

#define MAX_RECORD (4u << 20)
#define MAX_FIELDS 65536

/* Parses one complete record at buf[0..len); returns its length, 0 if incomplete, -1 if malformed.
 * fields[] point into buf. */
static long parse_record(char *buf, size_t len, char ***fields_out, int *n_out) {
  char *nul = memchr(buf, 0, len);
  if (!nul) return len > 16 ? -1 : 0;
  char *end;
  long n = strtol(buf, &end, 10);
  if (end != nul || n < 2 || n > MAX_FIELDS) return -1;
  char **fields = malloc(sizeof(char *) * (size_t)(n + 1));
  if (!fields) return -1;
  size_t pos = (size_t)(nul - buf) + 1;
  for (long k = 0; k < n; k++) {
    char *z = pos < len ? memchr(buf + pos, 0, len - pos) : NULL;
    if (!z) { free(fields); return 0; }
    fields[k] = buf + pos;
    pos = (size_t)(z - buf) + 1;
  }
  fields[n] = NULL;
  *fields_out = fields;
  *n_out = (int)n;
  return (long)pos;
}

static void launch_one(char **f, int n) {
  const char *tag = f[0];
  char *end;
  long nenv = strtol(f[1], &end, 10);
  if (*end || nenv < 0 || nenv > n - 2) {
    char line[300];
    int m = snprintf(line, sizeof line, "err %.200s malformed launch record\n", tag);
    write_all(1, line, (size_t)m);
    return;
  }
  /* argv: berth-shim --tag TAG OPTIONS... -- ARGV...; envp: the record's entries. Built before
   * the vfork: the child only duplicates descriptors and execs. */
  long nargs = n - 2 - nenv;
  char **args = malloc(sizeof(char *) * (size_t)(nargs + 4));
  char **env = malloc(sizeof(char *) * (size_t)(nenv + 1));
  if (!args || !env) _exit(70);
  args[0] = (char *)"berth-shim";
  args[1] = (char *)"--tag";
  args[2] = (char *)tag;
  for (long k = 0; k < nargs; k++) args[3 + k] = f[2 + nenv + k];
  args[3 + nargs] = NULL;
  for (long k = 0; k < nenv; k++) env[k] = f[2 + k];
  env[nenv] = NULL;
  int dn = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = vfork();
  if (pid == 0) {
    /* stdin: not the agent's pipe; fd 3: the report channel (our stdout). The SIGCHLD handler is
     * reset by exec; the mask is empty in the server. */
    if (dn < 0 || dup2(dn, 0) < 0 || dup2(1, 3) < 0) _exit(125);
    execve(self_exe, args, env);
    _exit(125);
  }
  int e = errno;
  if (dn >= 0) close(dn);
  free(args);
  free(env);
  if (pid < 0) {
    char line[400];
    int m = snprintf(line, sizeof line, "err %.200s start supervisor: %s\n", tag, strerror(e));
    write_all(1, line, (size_t)m);
    return;
  }
  if (n_lives == cap_lives) {
    cap_lives = cap_lives ? cap_lives * 2 : 64;
    lives = realloc(lives, sizeof *lives * cap_lives);
    if (!lives) _exit(70);
  }
  lives[n_lives].pid = pid;
  lives[n_lives].tag = strdup(tag);
  n_lives++;
}

static int server(void) {
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  if (pipe2(sigchld_pipe, O_CLOEXEC | O_NONBLOCK) < 0) return 71;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, NULL);

  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  if (!buf) return 70;
  struct pollfd pf[2] = { { 0, POLLIN, 0 }, { sigchld_pipe[0], POLLIN, 0 } };
  for (;;) {
    int r = poll(pf, 2, -1);
    if (r < 0) { if (errno == EINTR) continue; return 72; }
    if (pf[1].revents) {
      char d[64];
      while (read(sigchld_pipe[0], d, sizeof d) > 0) { }
      reap();
    }
    if (!pf[0].revents) continue;
    if (len == cap) {
      if (cap >= MAX_RECORD) { fprintf(stderr, "berth-shim: launch record too large\n"); return 65; }
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) return 70;
      buf = nb;
    }
    ssize_t got = read(0, buf + len, cap - len);
    if (got < 0) { if (errno == EINTR || errno == EAGAIN) continue; return 0; }
    if (got == 0) return 0; /* the agent is gone or closed us: supervisors go on */
    len += (size_t)got;
    size_t off = 0;
    for (;;) {
      char **fields;
      int n;
      long used = parse_record(buf + off, len - off, &fields, &n);
      if (used < 0) { fprintf(stderr, "berth-shim: malformed launch record\n"); return 65; }
      if (used == 0) break;
      launch_one(fields, n);
      free(fields);
      off += (size_t)used;
    }
    memmove(buf, buf + off, len - off);
    len -= off;
  }
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--server") == 0) {
    ssize_t l = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (l <= 0) { fprintf(stderr, "berth-shim: cannot find its own binary: %s\n", strerror(errno)); return 71; }
    self_exe[l] = 0;
    return server();
  }
  /* fd 3 is the status pipe when the agent (or the server) passed one. */
  if (fcntl(3, F_GETFD) >= 0) {
    status_fd = 3;
    fcntl(3, F_SETFD, FD_CLOEXEC);
  }
  if (argc >= 3 && strcmp(argv[1], "--tag") == 0) {
    /* Started by the server: report with the tag, enter the sandbox ourselves (argv[2], the tag,
     * is the option parser's placeholder). */
    report_tag = argv[2];
    supervise(argc - 2, argv + 2, 1);
  }
  supervise(argc, argv, 0);
  return 0;
}
