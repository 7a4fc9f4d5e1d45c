//! IPv4 UDP socket with batched I/O.
//!
//! Send (JS thread): packets laid out in one JS buffer + meta (off, len, ip, port) go out with one
//! `sendmmsg`; runs of equal-size packets to one destination become a single UDP GSO message
//! (`UDP_SEGMENT`), as in the 26 Gbit/s baseline. MSG_DONTWAIT: a full socket buffer ends the call early
//! (the count says how far it got) instead of blocking the event loop.
//!
//! Receive: one reader thread per socket blocks in poll(), drains with `recvmmsg` (and `UDP_GRO`, split
//! by the gso_size cmsg) into a ring of JS-owned slots, and hands each filled slot to JS with one
//! threadsafe-function call. Why a thread rather than JS-driven `recvBatch()`: the syscalls and the copy
//! run on the second core while JS handles the previous slot (the ring pipelines them), and a batch is
//! sent as soon as recvmmsg returns anything, so latency stays one wakeup (no timer, no fill target).
//! Backpressure: when all slots are with JS the thread waits, the kernel buffer fills, the kernel drops.
//!
//! Tunnel keys (issue 18): JS installs each Noise session's two keys once, under the session's local index.
//! The reader then opens every PND1 data frame addressed to a known index in place, before JS sees the slot,
//! and writes a verdict per packet (status: 0 = not opened — not a data frame or an unknown index, JS decides;
//! 1 = authentic, plaintext at [16, len-16); 2 = forged). Replay and expiry stay in JS (src/crypto/session.ts,
//! one implementation), which is correct after authentication. On send, `send_batch` seals every packet whose
//! key id is non-zero with that session's send key (the header and counter JS wrote are the nonce and
//! associated data) and hands the whole flush to sendmmsg/GSO in the same call.
use crate::napi::*;
use crate::sys::*;
use crate::aead::Aead;
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::os::raw::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Linux UDP_MAX_SEGMENTS is 64 on older kernels (128 on newer); stay within both.
const GSO_MAX_SEGMENTS: usize = 64;
/// One GSO message must fit an IPv4 datagram: 65535 - 20 (IP) - 8 (UDP), with margin.
const GSO_MAX_BYTES: usize = 65000;
const SEND_MAX_MSGS: usize = 1024; // UIO_MAXIOV bounds sendmmsg's vlen
const SEND_MAX_IOVS: usize = 4096;
const RECV_CTRL_BYTES: usize = 64;

pub static EXITING: AtomicBool = AtomicBool::new(false);
pub extern "C" fn on_exit() {
    EXITING.store(true, SeqCst);
}

#[derive(Default)]
pub struct Stats {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_dropped: AtomicU64,
    pub tx_gso_sends: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_batches: AtomicU64,
    pub rx_dropped: AtomicU64,
    pub last_errno: AtomicU64,
}

struct SendScratch {
    msgs: Vec<mmsghdr>,
    iovs: Vec<iovec>,
    addrs: Vec<sockaddr_in>,
    ctrl: Vec<[u64; 3]>, // CMSG_SPACE(int) = 24 bytes, 8-aligned
    first_pkt: Vec<u32>, // first packet index of each message
    pkts: Vec<u32>,      // packets in each message
}

struct RecvShared {
    released: Mutex<u64>,
    cond: Condvar,
    /// True until the TSFN finalizer ran; held while the reader thread calls into the TSFN so the
    /// finalizer cannot free it mid-call.
    tsfn_alive: Mutex<bool>,
    /// Set by close(): batches still queued in the TSFN are dropped, never shown to JS.
    stopped: AtomicBool,
}

struct Recv {
    thread: Option<JoinHandle<()>>,
    shared: Arc<RecvShared>,
    buf_ref: napi_ref,
    meta_ref: napi_ref,
    status_ref: napi_ref,
    tsfn: napi_threadsafe_function,
}
unsafe impl Send for Recv {}

pub struct Sock {
    fd: c_int,
    wake_fd: c_int,
    pub local_port: u16,
    closed: AtomicBool,
    gso: AtomicBool,
    gro: bool,
    env: usize,
    pub stats: Stats,
    send: UnsafeCell<SendScratch>,
    recv: Mutex<Option<Recv>>,
    hook_arg: Mutex<usize>,
    /// Receive keys by local session index; the reader holds the lock for one batch.
    rx_keys: Mutex<HashMap<u32, Aead>>,
    /// rx_keys.len(), read without the lock so a socket without tunnels never takes it.
    rx_key_count: AtomicUsize,
    /// Send keys by the same index; JS thread only (like `send`).
    tx_keys: UnsafeCell<HashMap<u32, Aead>>,
}
// `send` and `tx_keys` are only touched from the JS thread (udpSend); everything else is atomics or mutexes.
unsafe impl Sync for Sock {}
unsafe impl Send for Sock {}

pub const FEATURE_GSO: u32 = 1;
pub const FEATURE_GRO: u32 = 2;

impl Sock {
    /// Bind ip:port (port 0 = ephemeral). Err(-errno).
    pub fn open(env: napi_env, ip: u32, port: u16, rcvbuf: i32, sndbuf: i32, features: u32) -> Result<Arc<Sock>, i32> {
        unsafe {
            let fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(-errno());
            }
            // FORCE variants pass rmem_max when we have CAP_NET_ADMIN; otherwise the plain ones clamp.
            if rcvbuf > 0 && setsockopt_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf) < 0 {
                setsockopt_int(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf);
            }
            if sndbuf > 0 && setsockopt_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, sndbuf) < 0 {
                setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, sndbuf);
            }
            let addr = sockaddr_in::v4(ip, port);
            if bind(fd, &addr, 16) < 0 {
                let e = errno();
                close(fd);
                return Err(-e);
            }
            let mut bound = sockaddr_in::zeroed();
            let mut len = 16u32;
            getsockname(fd, &mut bound, &mut len);
            let gro = features & FEATURE_GRO != 0 && setsockopt_int(fd, SOL_UDP, UDP_GRO, 1) == 0;
            let wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if wake_fd < 0 {
                let e = errno();
                close(fd);
                return Err(-e);
            }
            let scratch = SendScratch {
                msgs: vec![mmsghdr::zeroed(); SEND_MAX_MSGS],
                iovs: vec![iovec { iov_base: ptr::null_mut(), iov_len: 0 }; SEND_MAX_IOVS],
                addrs: vec![sockaddr_in::zeroed(); SEND_MAX_MSGS],
                ctrl: vec![[0u64; 3]; SEND_MAX_MSGS],
                first_pkt: vec![0; SEND_MAX_MSGS],
                pkts: vec![0; SEND_MAX_MSGS],
            };
            Ok(Arc::new(Sock {
                fd,
                wake_fd,
                local_port: u16::from_be(bound.sin_port),
                closed: AtomicBool::new(false),
                gso: AtomicBool::new(features & FEATURE_GSO != 0),
                gro,
                env: env as usize,
                stats: Stats::default(),
                send: UnsafeCell::new(scratch),
                recv: Mutex::new(None),
                hook_arg: Mutex::new(0),
                rx_keys: Mutex::new(HashMap::new()),
                rx_key_count: AtomicUsize::new(0),
                tx_keys: UnsafeCell::new(HashMap::new()),
            }))
        }
    }

    pub fn features(&self) -> u32 {
        (if self.gso.load(Relaxed) { FEATURE_GSO } else { 0 }) | (if self.gro { FEATURE_GRO } else { 0 })
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    pub fn set_hook_arg(&self, p: usize) {
        *self.hook_arg.lock().unwrap() = p;
    }

    /// Install a tunnel session's keys (PND1 layout; `alg` = the data cipher the handshake agreed:
    /// ChaCha20-Poly1305 or AES-256-GCM) under its local index; replaces keys already there. 0 | -errno
    /// (-EOPNOTSUPP: no AES-GCM here). JS thread only.
    pub fn set_session(&self, index: u32, tx: &[u8], rx: &[u8], alg: u32) -> i32 {
        if index == 0 {
            return -EINVAL;
        }
        let (t, r) = match (Aead::new(alg, tx, Aead::NOISE_DATA), Aead::new(alg, rx, Aead::NOISE_DATA)) {
            (Ok(t), Ok(r)) => (t, r),
            (Err(e), _) | (_, Err(e)) => return -e,
        };
        unsafe { (*self.tx_keys.get()).insert(index, t) };
        let mut g = self.rx_keys.lock().unwrap();
        g.insert(index, r);
        self.rx_key_count.store(g.len(), SeqCst);
        0
    }

    /// Forget (and wipe) a session's keys. 0 when it was there, -ENOENT otherwise. JS thread only.
    pub fn remove_session(&self, index: u32) -> i32 {
        let had_tx = unsafe { (*self.tx_keys.get()).remove(&index) }.is_some();
        let mut g = self.rx_keys.lock().unwrap();
        let had_rx = g.remove(&index).is_some();
        self.rx_key_count.store(g.len(), SeqCst);
        if had_tx || had_rx {
            0
        } else {
            -ENOENT
        }
    }

    /// Send `count` packets described by meta (stride 4: off, len, ip, port) from `buf`. With `keys`, packet
    /// i is first sealed in place with session keys[i]'s send key (0 = send as it is); an unknown key id
    /// fails the whole call with -ENOKEY before anything is sealed or sent (never a clear frame).
    /// Returns packets handed to the kernel, or -errno when none was. JS thread only.
    pub fn send_batch(&self, buf: &mut [u8], meta: &[u32], count: usize, keys: Option<&[u32]>) -> i32 {
        if self.is_closed() {
            return -EBADF;
        }
        if meta.len() < count * 4 || keys.is_some_and(|k| k.len() < count) {
            return -EINVAL;
        }
        for i in 0..count {
            let (off, len) = (meta[i * 4] as usize, meta[i * 4 + 1] as usize);
            if off + len > buf.len() || meta[i * 4 + 3] > 0xffff {
                return -EINVAL;
            }
        }
        if let Some(keys) = keys {
            let table = unsafe { &*self.tx_keys.get() };
            for &k in &keys[..count] {
                if k != 0 && !table.contains_key(&k) {
                    return -ENOKEY;
                }
            }
            let mut last: Option<(u32, &Aead)> = None;
            for i in 0..count {
                let k = keys[i];
                if k == 0 {
                    continue;
                }
                let a = match last {
                    Some((lk, a)) if lk == k => a,
                    _ => {
                        let a = &table[&k];
                        last = Some((k, a));
                        a
                    }
                };
                let (off, len) = (meta[i * 4] as usize, meta[i * 4 + 1] as usize);
                if !a.seal_packet(&mut buf[off..off + len]) {
                    return -EINVAL; // shorter than header + tag: a caller bug; nothing of this batch was sent
                }
            }
        }
        let s = unsafe { &mut *self.send.get() };
        let base = buf.as_ptr() as *mut u8;
        let mut sent_pkts = 0usize;
        let mut first_err = 0;
        let mut i = 0usize;
        // Packets before this index go without GSO (a GSO message the kernel refused is retried plainly).
        let mut no_gso_until = 0usize;
        'outer: while i < count {
            // Build up to SEND_MAX_MSGS messages.
            let use_gso_global = self.gso.load(Relaxed);
            let (mut nmsg, mut niov) = (0usize, 0usize);
            let mut j = i;
            while j < count && nmsg < SEND_MAX_MSGS && niov < SEND_MAX_IOVS {
                let (len, ip, port) = (meta[j * 4 + 1] as usize, meta[j * 4 + 2], meta[j * 4 + 3]);
                let mut run = 1usize;
                if use_gso_global && j >= no_gso_until && len > 0 {
                    let cap = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / len).min(SEND_MAX_IOVS - niov);
                    while j + run < count && run < cap {
                        let k = (j + run) * 4;
                        if meta[k + 2] != ip || meta[k + 3] != port {
                            break;
                        }
                        let l = meta[k + 1] as usize;
                        if l == len {
                            run += 1;
                        } else {
                            if l > 0 && l < len {
                                run += 1; // GSO allows one shorter final segment
                            }
                            break;
                        }
                    }
                }
                for r in 0..run {
                    let k = (j + r) * 4;
                    s.iovs[niov + r] = iovec {
                        iov_base: unsafe { base.add(meta[k] as usize) } as *mut c_void,
                        iov_len: meta[k + 1] as usize,
                    };
                }
                s.addrs[nmsg] = sockaddr_in::v4(ip, port as u16);
                let h = &mut s.msgs[nmsg].msg_hdr;
                h.msg_name = &mut s.addrs[nmsg] as *mut sockaddr_in as *mut c_void;
                h.msg_namelen = 16;
                h.msg_iov = &mut s.iovs[niov];
                h.msg_iovlen = run;
                h.msg_flags = 0;
                if run > 1 {
                    let c = s.ctrl[nmsg].as_mut_ptr() as *mut u8;
                    unsafe {
                        let ch = c as *mut cmsghdr;
                        (*ch).cmsg_len = CMSG_HDR_BYTES + 2; // kernel insists on CMSG_LEN(sizeof(u16))
                        (*ch).cmsg_level = SOL_UDP;
                        (*ch).cmsg_type = UDP_SEGMENT;
                        *(c.add(CMSG_HDR_BYTES) as *mut u16) = len as u16; // UDP_SEGMENT takes a u16
                    }
                    h.msg_control = c as *mut c_void;
                    h.msg_controllen = CMSG_INT_SPACE;
                } else {
                    h.msg_control = ptr::null_mut();
                    h.msg_controllen = 0;
                }
                s.first_pkt[nmsg] = j as u32;
                s.pkts[nmsg] = run as u32;
                nmsg += 1;
                niov += run;
                j += run;
            }
            // Send them.
            let mut m = 0usize;
            while m < nmsg {
                let r = unsafe { sendmmsg(self.fd, s.msgs.as_mut_ptr().add(m), (nmsg - m) as u32, MSG_DONTWAIT) };
                if r > 0 {
                    for q in m..m + r as usize {
                        let n = s.pkts[q] as usize;
                        sent_pkts += n;
                        if n > 1 {
                            self.stats.tx_gso_sends.fetch_add(1, Relaxed);
                        }
                        let f = s.first_pkt[q] as usize;
                        let bytes: usize = (f..f + n).map(|p| meta[p * 4 + 1] as usize).sum();
                        self.stats.tx_bytes.fetch_add(bytes as u64, Relaxed);
                    }
                    m += r as usize;
                    continue;
                }
                let e = errno();
                if e == EINTR {
                    continue;
                }
                self.stats.last_errno.store(e as u64, Relaxed);
                if first_err == 0 {
                    first_err = e;
                }
                if e == EAGAIN || e == ENOBUFS {
                    // Socket buffer full: stop here; the caller sees how many went out.
                    let rest = count - (s.first_pkt[m] as usize);
                    self.stats.tx_dropped.fetch_add(rest as u64, Relaxed);
                    break 'outer;
                }
                if s.pkts[m] > 1 {
                    // The kernel refused GSO for this message: EIO/EOPNOTSUPP/ENOPROTOOPT mean never
                    // (device or kernel lacks it), EINVAL/EMSGSIZE mean not for this run (e.g. > MTU).
                    if e == EIO || e == EOPNOTSUPP || e == ENOPROTOOPT {
                        self.gso.store(false, Relaxed);
                    }
                    let f = s.first_pkt[m] as usize;
                    no_gso_until = f + s.pkts[m] as usize;
                    i = f;
                    continue 'outer;
                }
                // A per-destination error (unreachable, bad port): drop that packet, go on.
                self.stats.tx_dropped.fetch_add(1, Relaxed);
                m += 1;
            }
            i = j;
        }
        self.stats.tx_packets.fetch_add(sent_pkts as u64, Relaxed);
        if sent_pkts == 0 && count > 0 && first_err != 0 {
            -first_err
        } else {
            sent_pkts as i32
        }
    }

    /// Begin receiving: `slots` ring slots, each `msgs` datagrams of `elem_bytes` (64 KiB with GRO) and
    /// room for `meta_per_slot` packets in meta and status (one verdict byte per packet, see the top).
    /// `on_batch(slot, count, errno)` runs on the JS thread.
    pub unsafe fn start_recv(
        self: &Arc<Self>,
        env: napi_env,
        buf_v: napi_value,
        meta_v: napi_value,
        status_v: napi_value,
        cb: napi_value,
        slots: usize,
        msgs: usize,
        elem_bytes: usize,
        meta_per_slot: usize,
    ) -> i32 {
        if self.is_closed() {
            return -EBADF;
        }
        let mut guard = self.recv.lock().unwrap();
        if guard.is_some() {
            return -crate::sys::EINVAL;
        }
        let (Some(buf), Some(meta), Some(status)) = (get_u8s(env, buf_v), get_u32s(env, meta_v), get_u8s(env, status_v)) else {
            return -EINVAL;
        };
        if slots == 0 || slots > 255 || msgs == 0 || msgs > 1024 || elem_bytes == 0 || meta_per_slot < msgs {
            return -EINVAL;
        }
        let slot_bytes = msgs * elem_bytes;
        if buf.len() < slots * slot_bytes
            || meta.len() < slots * meta_per_slot * 4
            || status.len() < slots * meta_per_slot
            || slot_bytes > u32::MAX as usize
        {
            return -EINVAL;
        }
        let shared = Arc::new(RecvShared {
            released: Mutex::new(0),
            cond: Condvar::new(),
            tsfn_alive: Mutex::new(true),
            stopped: AtomicBool::new(false),
        });
        let (mut buf_ref, mut meta_ref, mut status_ref) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        napi_create_reference(env, buf_v, 1, &mut buf_ref);
        napi_create_reference(env, meta_v, 1, &mut meta_ref);
        napi_create_reference(env, status_v, 1, &mut status_ref);
        let ctx = Arc::into_raw(shared.clone()) as *mut c_void;
        let mut tsfn = ptr::null_mut();
        let st = napi_create_threadsafe_function(
            env,
            cb,
            ptr::null_mut(),
            string(env, "pilot-datapath-recv"),
            0,
            1,
            ctx,
            Some(tsfn_finalize),
            ctx,
            Some(call_js),
            &mut tsfn,
        );
        if st != NAPI_OK {
            drop(Arc::from_raw(ctx as *const RecvShared));
            napi_delete_reference(env, buf_ref);
            napi_delete_reference(env, meta_ref);
            napi_delete_reference(env, status_ref);
            return -EINVAL;
        }
        let cfg = RecvCfg {
            buf: buf.as_mut_ptr() as usize,
            meta: meta.as_mut_ptr() as usize,
            status: status.as_mut_ptr() as usize,
            slots,
            msgs,
            elem_bytes,
            meta_per_slot,
            tsfn: tsfn as usize,
        };
        let me = self.clone();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pilot-udp-rx".into())
            .stack_size(256 * 1024)
            .spawn(move || reader(me, sh, cfg));
        let thread = match thread {
            Ok(t) => t,
            Err(_) => {
                napi_release_threadsafe_function(tsfn, TSFN_RELEASE);
                napi_delete_reference(env, buf_ref);
                napi_delete_reference(env, meta_ref);
                napi_delete_reference(env, status_ref);
                return -ENOMEM;
            }
        };
        *guard = Some(Recv { thread: Some(thread), shared, buf_ref, meta_ref, status_ref, tsfn });
        0
    }

    /// ref=false lets the process exit while this socket waits for packets (like dgram's unref()).
    pub unsafe fn set_ref(&self, env: napi_env, on: bool) -> i32 {
        let g = self.recv.lock().unwrap();
        let Some(r) = g.as_ref() else { return 0 };
        let alive = r.shared.tsfn_alive.lock().unwrap();
        if *alive && !self.is_closed() {
            if on {
                napi_ref_threadsafe_function(env, r.tsfn);
            } else {
                napi_unref_threadsafe_function(env, r.tsfn);
            }
        }
        0
    }

    /// Stop the reader (joins it), drop JS references, close the fds. Idempotent. JS thread only.
    pub unsafe fn close(&self) -> i32 {
        if self.closed.swap(true, SeqCst) {
            return 0;
        }
        let one: u64 = 1;
        write(self.wake_fd, &one as *const u64 as *const c_void, 8);
        let recv = self.recv.lock().unwrap().take();
        if let Some(mut r) = recv {
            r.shared.stopped.store(true, SeqCst);
            {
                let _g = r.shared.released.lock().unwrap();
                r.shared.cond.notify_all();
            }
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
            let env = self.env as napi_env;
            napi_delete_reference(env, r.buf_ref);
            napi_delete_reference(env, r.meta_ref);
            napi_delete_reference(env, r.status_ref);
        }
        close(self.fd);
        close(self.wake_fd);
        let hook = std::mem::replace(&mut *self.hook_arg.lock().unwrap(), 0);
        if hook != 0 {
            napi_remove_env_cleanup_hook(self.env as napi_env, env_cleanup, hook as *mut c_void);
            drop(Arc::from_raw(hook as *const Sock));
        }
        0
    }
}

/// Runs at environment teardown (process exit, worker end) for sockets JS never closed.
pub unsafe extern "C" fn env_cleanup(arg: *mut c_void) {
    let sock = &*(arg as *const Sock);
    // close() removes this hook and drops the Arc it holds; keep one alive across the call.
    let keep = { Arc::increment_strong_count(arg as *const Sock); Arc::from_raw(arg as *const Sock) };
    sock.close();
    drop(keep);
}

#[derive(Clone, Copy)]
struct RecvCfg {
    buf: usize,
    meta: usize,
    status: usize,
    slots: usize,
    msgs: usize,
    elem_bytes: usize,
    meta_per_slot: usize,
    tsfn: usize,
}

fn gro_segment_size(h: &msghdr) -> Option<usize> {
    if h.msg_controllen < CMSG_HDR_BYTES || h.msg_control.is_null() {
        return None;
    }
    let mut off = 0usize;
    let base = h.msg_control as *const u8;
    while off + CMSG_HDR_BYTES <= h.msg_controllen {
        let c = unsafe { &*(base.add(off) as *const cmsghdr) };
        if c.cmsg_len < CMSG_HDR_BYTES {
            break;
        }
        if c.cmsg_level == SOL_UDP && c.cmsg_type == UDP_GRO && c.cmsg_len >= CMSG_INT_LEN {
            let v = unsafe { *(base.add(off + CMSG_HDR_BYTES) as *const c_int) };
            return (v > 0).then_some(v as usize);
        }
        off += (c.cmsg_len + 7) & !7;
    }
    None
}

const PND1: [u8; 4] = *b"PND1";
const NOISE_DATA_MIN_BYTES: usize = 32;
const STATUS_NOT_OPENED: u8 = 0;
const STATUS_OPENED: u8 = 1;
const STATUS_FORGED: u8 = 2;

/// Open, in place, every PND1 frame of a filled slot whose receiver index has keys (see the top).
fn open_slot(sock: &Sock, base: *mut u8, slot_bytes: usize, meta: &[u32], status: &mut [u8]) {
    status.fill(STATUS_NOT_OPENED);
    if sock.rx_key_count.load(Relaxed) == 0 {
        return;
    }
    let table = sock.rx_keys.lock().unwrap();
    let mut last: Option<(u32, &Aead)> = None;
    for (i, st) in status.iter_mut().enumerate() {
        let (off, len) = (meta[i * 4] as usize, meta[i * 4 + 1] as usize);
        if len < NOISE_DATA_MIN_BYTES || off + len > slot_bytes {
            continue;
        }
        // In bounds: off + len <= slot_bytes, and the slot is ours until it is delivered.
        let pkt = unsafe { std::slice::from_raw_parts_mut(base.add(off), len) };
        if pkt[..4] != PND1 {
            continue;
        }
        let index = u32::from_le_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let a = match last {
            Some((k, a)) if k == index => a,
            _ => match table.get(&index) {
                Some(a) => {
                    last = Some((index, a));
                    a
                }
                None => continue,
            },
        };
        *st = if a.open_packet(pkt) { STATUS_OPENED } else { STATUS_FORGED };
    }
}

fn reader(sock: Arc<Sock>, shared: Arc<RecvShared>, cfg: RecvCfg) {
    let m = cfg.msgs;
    let slot_bytes = m * cfg.elem_bytes;
    let mut msgs = vec![mmsghdr::zeroed(); m];
    let mut iovs = vec![iovec { iov_base: ptr::null_mut(), iov_len: 0 }; m];
    let mut addrs = vec![sockaddr_in::zeroed(); m];
    let mut ctrl = vec![0u64; m * RECV_CTRL_BYTES / 8];
    let mut produced: u64 = 0;
    let tsfn = cfg.tsfn as napi_threadsafe_function;
    let mut tsfn_gone = false;
    let mut error_streak = 0u32;

    // Returns false when JS can no longer be reached (env teardown).
    let deliver = |slot: usize, count: usize, errno: i32, produced: &mut u64| -> bool {
        *produced += 1;
        let alive = shared.tsfn_alive.lock().unwrap();
        if !*alive || EXITING.load(SeqCst) {
            return false;
        }
        let data = (count as u64) | ((slot as u64) << 32) | (((errno as u64) & 0xffff) << 48);
        let st = unsafe { napi_call_threadsafe_function(tsfn, data as usize as *mut c_void, TSFN_NONBLOCKING) };
        st == NAPI_OK
    };

    'run: loop {
        if sock.is_closed() {
            break;
        }
        {
            let mut rel = shared.released.lock().unwrap();
            while produced.saturating_sub(*rel) >= cfg.slots as u64 && !sock.is_closed() {
                rel = shared.cond.wait(rel).unwrap();
            }
        }
        if sock.is_closed() {
            break;
        }
        let slot = (produced % cfg.slots as u64) as usize;
        let base = cfg.buf + slot * slot_bytes;
        let meta = unsafe {
            std::slice::from_raw_parts_mut((cfg.meta as *mut u32).add(slot * cfg.meta_per_slot * 4), cfg.meta_per_slot * 4)
        };
        for j in 0..m {
            iovs[j] = iovec { iov_base: (base + j * cfg.elem_bytes) as *mut c_void, iov_len: cfg.elem_bytes };
            let h = &mut msgs[j].msg_hdr;
            h.msg_name = &mut addrs[j] as *mut sockaddr_in as *mut c_void;
            h.msg_namelen = 16;
            h.msg_iov = &mut iovs[j];
            h.msg_iovlen = 1;
            h.msg_control = if sock.gro { unsafe { ctrl.as_mut_ptr().add(j * RECV_CTRL_BYTES / 8) as *mut c_void } } else { ptr::null_mut() };
            h.msg_controllen = if sock.gro { RECV_CTRL_BYTES } else { 0 };
            h.msg_flags = 0;
        }
        let r = unsafe { recvmmsg(sock.fd, msgs.as_mut_ptr(), m as u32, MSG_DONTWAIT, ptr::null_mut()) };
        if r < 0 {
            let e = errno();
            if e == EAGAIN {
                let mut fds = [
                    pollfd { fd: sock.fd, events: POLLIN, revents: 0 },
                    pollfd { fd: sock.wake_fd, events: POLLIN, revents: 0 },
                ];
                unsafe { poll(fds.as_mut_ptr(), 2, -1) };
                continue;
            }
            if e == EINTR {
                continue;
            }
            sock.stats.last_errno.store(e as u64, Relaxed);
            if !deliver(slot, 0, e, &mut produced) {
                tsfn_gone = true;
                break 'run;
            }
            // Persistent errors (ENOMEM…) must not spin a core.
            error_streak += 1;
            std::thread::sleep(std::time::Duration::from_millis(error_streak.min(100) as u64));
            continue;
        }
        error_streak = 0;
        let mut n = 0usize;
        let mut bytes = 0u64;
        for j in 0..r as usize {
            let h = &msgs[j].msg_hdr;
            let len = msgs[j].msg_len as usize;
            if h.msg_flags & MSG_TRUNC != 0 {
                sock.stats.rx_dropped.fetch_add(1, Relaxed);
                continue;
            }
            let seg = if sock.gro { gro_segment_size(h).unwrap_or(len) } else { len };
            let ip = u32::from_be(addrs[j].sin_addr);
            let port = u16::from_be(addrs[j].sin_port) as u32;
            let start = j * cfg.elem_bytes;
            let mut o = 0usize;
            loop {
                let l = if len == 0 { 0 } else { seg.min(len - o) };
                if n >= cfg.meta_per_slot {
                    sock.stats.rx_dropped.fetch_add(1, Relaxed);
                    break;
                }
                meta[n * 4] = (start + o) as u32;
                meta[n * 4 + 1] = l as u32;
                meta[n * 4 + 2] = ip;
                meta[n * 4 + 3] = port;
                n += 1;
                bytes += l as u64;
                o += l;
                if o >= len || seg == 0 {
                    break;
                }
            }
        }
        if n == 0 {
            continue; // only truncated datagrams: reuse the slot
        }
        let status = unsafe { std::slice::from_raw_parts_mut((cfg.status as *mut u8).add(slot * cfg.meta_per_slot), n) };
        open_slot(&sock, base as *mut u8, slot_bytes, meta, status);
        sock.stats.rx_packets.fetch_add(n as u64, Relaxed);
        sock.stats.rx_bytes.fetch_add(bytes, Relaxed);
        sock.stats.rx_batches.fetch_add(1, Relaxed);
        if !deliver(slot, n, 0, &mut produced) {
            tsfn_gone = true;
            break 'run;
        }
    }
    if !tsfn_gone {
        let alive = shared.tsfn_alive.lock().unwrap();
        if *alive && !EXITING.load(SeqCst) {
            unsafe { napi_release_threadsafe_function(tsfn, TSFN_RELEASE) };
        }
    }
}

unsafe extern "C" fn call_js(env: napi_env, js_cb: napi_value, ctx: *mut c_void, data: *mut c_void) {
    let shared = &*(ctx as *const RecvShared);
    let d = data as usize as u64;
    let count = (d & 0xffff_ffff) as u32;
    let slot = ((d >> 32) & 0xffff) as u32;
    let errno = ((d >> 48) & 0xffff) as i32;
    if !env.is_null() && !js_cb.is_null() && !shared.stopped.load(SeqCst) {
        let argv = [uint(env, slot), uint(env, count), int(env, errno)];
        let mut ret = ptr::null_mut();
        let st = napi_call_function(env, undefined(env), js_cb, 3, argv.as_ptr(), &mut ret);
        if st == NAPI_PENDING_EXCEPTION {
            // A throwing handler is a bug: surface it as an uncaught exception, as a dgram 'message'
            // listener would (Node 20 otherwise only prints a deprecation warning for TSFN callbacks).
            let mut e = ptr::null_mut();
            napi_get_and_clear_last_exception(env, &mut e);
            napi_fatal_exception(env, e);
        }
    }
    let mut rel = shared.released.lock().unwrap();
    *rel += 1;
    shared.cond.notify_one();
}

unsafe extern "C" fn tsfn_finalize(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    let shared = Arc::from_raw(data as *const RecvShared);
    *shared.tsfn_alive.lock().unwrap() = false;
    // Unblock a reader waiting for a slot that will never be released now.
    let mut rel = shared.released.lock().unwrap();
    *rel = u64::MAX / 2;
    shared.cond.notify_all();
}
