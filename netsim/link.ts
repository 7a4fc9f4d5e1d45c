// Per-link impairment. This kernel has no netem/fq (../shared/README.md), so:
// - loss: nftables `numgen random` drops, in the lower namespace of the link, both directions;
// - rate: tbf on both ends' egress;
// - delay, jitter, reordering: the link is two TAP devices joined by a tiny C program (pn-link) that holds
//   each frame in a timer heap. TAP needs ioctl(TUNSETIFF), which Node cannot issue; a 150-line C program
//   compiled once with gcc into a cache dir is faster and more precise than python3 (µs ppoll timers, no GC),
//   and setns(2) lets one process own both TAPs in two namespaces. The TAPs vanish when it exits.
import { createHash } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { err, ok, type Result } from '../src/core/index.js';
import { runOk, which } from './exec.js';

export interface LinkSpec {
  /** Drop probability per packet, percent, each direction independently (0–100, fractions allowed). */
  lossPct?: number;
  /** Egress rate limit in kbit/s, each direction (tbf). */
  rateKbit?: number;
  /** One-way delay in milliseconds, applied in each direction (so RTT over the link grows by 2×). */
  delayMs?: number;
  /** Uniform ± jitter in milliseconds added to each packet's delay (reorders packets, as netem does). */
  jitterMs?: number;
  /** Percent of packets sent at once, overtaking the delayed ones (needs delayMs > 0). */
  reorderPct?: number;
}

/** True when the link must be built from TAPs + pn-link instead of a veth pair. */
export function needsUserspaceLink(l: LinkSpec | undefined): boolean {
  return !!l && ((l.delayMs ?? 0) > 0 || (l.jitterMs ?? 0) > 0 || (l.reorderPct ?? 0) > 0);
}

/** nft script dropping lossPct of packets entering and leaving `ifname` (table `ip pn_link_<ifname>`). */
export function lossRuleset(ifname: string, lossPct: number): string {
  const bp = Math.round(Math.min(100, Math.max(0, lossPct)) * 100); // basis points
  const t = `pn_link_${ifname.replace(/[^a-zA-Z0-9_]/g, '_')}`;
  const i = JSON.stringify(ifname);
  // priority -300: before conntrack, so a lost packet never creates or refreshes a NAT mapping;
  // priority 300: after NAT on the way out.
  return `table ip ${t} {
  chain lin { type filter hook prerouting priority -300; policy accept; iifname ${i} numgen random mod 10000 < ${bp} drop; }
  chain lout { type filter hook postrouting priority 300; policy accept; oifname ${i} numgen random mod 10000 < ${bp} drop; }
}
`;
}

/** `tc` argv (without `ip netns exec`) shaping egress of `ifname` to rateKbit. */
export function tbfArgs(ifname: string, rateKbit: number): string[] {
  const bytesPerS = (rateKbit * 1000) / 8;
  const burst = Math.max(3200, Math.round(bytesPerS / 50)); // ~20 ms worth, at least two full frames
  return ['tc', 'qdisc', 'replace', 'dev', ifname, 'root', 'tbf', 'rate', `${rateKbit}kbit`, 'burst', String(burst), 'latency', '200ms'];
}

const LINK_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* pn-link nsA ifA nsB ifB delayUs jitterUs reorderPermille seed persist
   Creates TAP ifA in netns nsA and TAP ifB in nsB and forwards frames between them, each held for
   delay +- jitter; reorderPermille of frames skip the wait. Prints "ready" when both TAPs exist. */

#define CAP 4096
#define FRAME 2048
typedef struct { uint64_t due, seq; uint16_t len; unsigned char data[FRAME]; } pkt;
typedef struct { pkt *slots; int n; } heap;
static uint64_t rng_state, seqno;

static void die(const char *what) { fprintf(stderr, "pn-link: %s: %s\n", what, strerror(errno)); exit(1); }
static uint64_t now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (uint64_t)t.tv_sec * 1000000u + t.tv_nsec / 1000; }
static uint64_t rnd(void) { uint64_t x = rng_state; x ^= x << 13; x ^= x >> 7; x ^= x << 17; return rng_state = x; }
static int less(pkt *a, pkt *b) { return a->due < b->due || (a->due == b->due && a->seq < b->seq); }
static void swap(pkt *a, pkt *b) { pkt t; memcpy(&t, a, sizeof t); memcpy(a, b, sizeof t); memcpy(b, &t, sizeof t); }
static void push_fix(heap *h) { int i = h->n - 1; while (i > 0) { int p = (i - 1) / 2; if (!less(&h->slots[i], &h->slots[p])) break; swap(&h->slots[i], &h->slots[p]); i = p; } }
static void pop(heap *h) {
  h->n--; if (h->n == 0) return; memcpy(&h->slots[0], &h->slots[h->n], sizeof(pkt));
  int i = 0; for (;;) { int l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && less(&h->slots[l], &h->slots[m])) m = l; if (r < h->n && less(&h->slots[r], &h->slots[m])) m = r;
    if (m == i) break; swap(&h->slots[i], &h->slots[m]); i = m; }
}
static int open_tap(const char *ns, const char *ifname) {
  char p[512]; snprintf(p, sizeof p, "/var/run/netns/%s", ns);
  int nfd = open(p, O_RDONLY); if (nfd < 0) die(p);
  if (setns(nfd, CLONE_NEWNET) < 0) die("setns"); close(nfd);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK); if (fd < 0) die("/dev/net/tun");
  struct ifreq ifr; memset(&ifr, 0, sizeof ifr); ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
  return fd;
}
int main(int argc, char **argv) {
  if (argc < 10) { fprintf(stderr, "usage: pn-link nsA ifA nsB ifB delayUs jitterUs reorderPermille seed persist\n"); return 2; }
  if (strcmp(argv[9], "1") != 0) prctl(PR_SET_PDEATHSIG, SIGKILL);
  int64_t delay = atoll(argv[5]), jitter = atoll(argv[6]); long reorder = atol(argv[7]);
  rng_state = strtoull(argv[8], 0, 10) * 2654435761u + 88172645463325252ull;
  int fa = open_tap(argv[1], argv[2]);
  int fb = open_tap(argv[3], argv[4]);
  /* live in nsA so "ip netns pids nsA" finds (and cleanup kills) this process */
  { char p[512]; snprintf(p, sizeof p, "/var/run/netns/%s", argv[1]); int nfd = open(p, O_RDONLY); if (nfd >= 0) { setns(nfd, CLONE_NEWNET); close(nfd); } }
  heap hq[2]; for (int d = 0; d < 2; d++) { hq[d].slots = malloc(sizeof(pkt) * CAP); hq[d].n = 0; if (!hq[d].slots) die("malloc"); }
  int in[2] = { fa, fb }, out[2] = { fb, fa };
  printf("ready\n"); fflush(stdout);
  signal(SIGPIPE, SIG_IGN);
  for (;;) {
    uint64_t now = now_us(); int64_t wait = -1;
    for (int d = 0; d < 2; d++) {
      while (hq[d].n > 0 && hq[d].slots[0].due <= now) { (void)!write(out[d], hq[d].slots[0].data, hq[d].slots[0].len); pop(&hq[d]); }
      if (hq[d].n > 0) { int64_t w = (int64_t)(hq[d].slots[0].due - now); if (wait < 0 || w < wait) wait = w; }
    }
    struct pollfd pf[2] = { { fa, POLLIN, 0 }, { fb, POLLIN, 0 } };
    struct timespec ts = { wait / 1000000, (wait % 1000000) * 1000 };
    int r = ppoll(pf, 2, wait < 0 ? NULL : &ts, NULL);
    if (r < 0 && errno != EINTR) die("ppoll");
    now = now_us();
    for (int d = 0; d < 2; d++) {
      if (!(pf[d].revents & POLLIN)) continue;
      for (;;) {
        if (hq[d].n >= CAP) { unsigned char sink[FRAME]; if (read(in[d], sink, FRAME) <= 0) break; continue; }
        pkt *p = &hq[d].slots[hq[d].n];
        ssize_t n = read(in[d], p->data, FRAME); if (n <= 0) break;
        int64_t j = jitter > 0 ? (int64_t)(rnd() % (uint64_t)(2 * jitter + 1)) - jitter : 0;
        int64_t due = (int64_t)now + delay + j; if (due < (int64_t)now) due = (int64_t)now;
        if (reorder > 0 && (long)(rnd() % 1000) < reorder) due = (int64_t)now;
        p->due = (uint64_t)due; p->seq = seqno++; p->len = (uint16_t)n; hq[d].n++; push_fix(&hq[d]);
      }
    }
  }
}
`;

let compiled: string | null = null;

/** Compile pn-link once per source version into a cache dir; returns the binary path. */
export async function ensureLinkBinary(): Promise<Result<string>> {
  if (compiled && existsSync(compiled)) return ok(compiled);
  const gcc = which('gcc') ?? which('cc');
  if (!gcc) return err('internal', 'delay/jitter/reorder links need a C compiler', { hint: 'apt-get install -y gcc' });
  const hash = createHash('sha256').update(LINK_C).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), 'pn-netsim-bin');
  const bin = join(dir, `pn-link-${hash}`);
  if (existsSync(bin)) return ok((compiled = bin));
  mkdirSync(dir, { recursive: true });
  const src = join(dir, `pn-link-${hash}-${process.pid}.c`);
  writeFileSync(src, LINK_C);
  const tmpBin = `${bin}.${process.pid}`;
  const r = await runOk([gcc, '-O2', '-o', tmpBin, src], { timeoutMs: 60_000 });
  if (!r.ok) return r;
  renameSync(tmpBin, bin); // atomic: concurrent test files may compile at once
  return ok((compiled = bin));
}

export interface UserspaceLink {
  child: ChildProcess;
  pid: number;
}

/**
 * Start pn-link joining TAP `ifA` in netns `nsA` with TAP `ifB` in `nsB`; resolves once both TAPs exist.
 * `persist` keeps it alive after this process exits (CLI `up`); otherwise it dies with us (PDEATHSIG).
 */
export async function startUserspaceLink(
  nsA: string,
  ifA: string,
  nsB: string,
  ifB: string,
  link: LinkSpec,
  seed: number,
  persist: boolean,
): Promise<Result<UserspaceLink>> {
  const bin = await ensureLinkBinary();
  if (!bin.ok) return bin;
  const argv = [
    nsA,
    ifA,
    nsB,
    ifB,
    String(Math.round((link.delayMs ?? 0) * 1000)),
    String(Math.round((link.jitterMs ?? 0) * 1000)),
    String(Math.round((link.reorderPct ?? 0) * 10)),
    String(seed >>> 0),
    persist ? '1' : '0',
  ];
  const child = spawn(bin.value, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: persist,
  });
  return await new Promise((resolve) => {
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(err('timeout', `pn-link ${ifA}<->${ifB} did not start: ${stderr}`));
    }, 10_000);
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', (cause) => {
      clearTimeout(timer);
      resolve(err('internal', `pn-link: ${cause.message}`, { cause }));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(err('internal', `pn-link ${ifA}<->${ifB} exited (${code}): ${stderr.trim()}`));
    });
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      child.removeAllListeners('exit');
      if (persist) child.unref();
      (child.stdout as NodeJS.ReadableStream & { unref?: () => void }).unref?.();
      (child.stderr as NodeJS.ReadableStream & { unref?: () => void }).unref?.();
      resolve(ok({ child, pid: child.pid! }));
    });
  });
}
