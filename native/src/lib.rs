//! pilot-datapath: the native half of src/datapath. Exposes batched UDP I/O and batch AEAD as plain
//! functions over opaque handles; src/datapath/native.ts wraps them. Nothing here throws into JS:
//! every call returns a count, a handle, or -errno (EINVAL for bad arguments).
mod aead;
mod napi;
mod sys;
mod udp;

use napi::*;
use std::cell::UnsafeCell;
use std::os::raw::c_void;
use std::ptr;
use std::sync::{Arc, Once};
use sys::{EBADF, EINVAL};

unsafe fn sock_of<'a>(env: napi_env, v: napi_value) -> Option<&'a Arc<udp::Sock>> {
    let p = get_external(env, v)? as *const Arc<udp::Sock>;
    Some(&*p)
}

unsafe extern "C" fn finalize_sock(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    let b = Box::from_raw(data as *mut Arc<udp::Sock>);
    b.close();
}

/// udpOpen(ipU32, port, rcvbufBytes, sndbufBytes, features) → handle | -errno
unsafe extern "C" fn udp_open(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<5>(env, info);
    let (Some(ip), Some(port), Some(rb), Some(sb), Some(f)) =
        (get_u32(env, a[0]), get_u32(env, a[1]), get_u32(env, a[2]), get_u32(env, a[3]), get_u32(env, a[4]))
    else {
        return int(env, -EINVAL);
    };
    if port > 0xffff {
        return int(env, -EINVAL);
    }
    match udp::Sock::open(env, ip, port as u16, rb.min(i32::MAX as u32) as i32, sb.min(i32::MAX as u32) as i32, f) {
        Err(e) => int(env, e),
        Ok(sock) => {
            let hook = Arc::into_raw(sock.clone()) as *mut c_void;
            sock.set_hook_arg(hook as usize);
            napi_add_env_cleanup_hook(env, udp::env_cleanup, hook);
            let raw = Box::into_raw(Box::new(sock)) as *mut c_void;
            let mut r = ptr::null_mut();
            napi_create_external(env, raw, Some(finalize_sock), ptr::null_mut(), &mut r);
            r
        }
    }
}

/// routeMtu(ipU32, port) → the MTU of the route to ip:port (the local link's, or a smaller one the kernel
/// learned) | -errno. A throwaway connected UDP socket; nothing is sent. DPLPMTUD (src/transport/pmtud.ts)
/// never probes above it, so its probes are not fragmented at the first hop.
unsafe extern "C" fn route_mtu(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let (Some(ip), Some(port)) = (get_u32(env, a[0]), get_u32(env, a[1])) else {
        return int(env, -EINVAL);
    };
    if port > 0xffff {
        return int(env, -EINVAL);
    }
    let fd = sys::socket(sys::AF_INET, sys::SOCK_DGRAM | sys::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return int(env, -sys::errno());
    }
    let addr = sys::sockaddr_in::v4(ip, port as u16);
    let r = if sys::connect(fd, &addr, std::mem::size_of::<sys::sockaddr_in>() as u32) < 0 {
        -sys::errno()
    } else {
        sys::getsockopt_int(fd, sys::IPPROTO_IP, sys::IP_MTU) // -errno on failure
    };
    sys::close(fd);
    int(env, r)
}

unsafe extern "C" fn udp_local_port(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    match sock_of(env, a[0]) {
        Some(s) => int(env, s.local_port as i32),
        None => int(env, -EINVAL),
    }
}

unsafe extern "C" fn udp_features(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    match sock_of(env, a[0]) {
        Some(s) => int(env, s.features() as i32),
        None => int(env, -EINVAL),
    }
}

/// udpSend(handle, buf: Uint8Array, meta: Uint32Array, count, keys?: Uint32Array) → packets sent | -errno.
/// With keys, packet i is sealed first with session keys[i] (0 = as it is): seal + sendmmsg in one call.
unsafe extern "C" fn udp_send(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<5>(env, info);
    let (Some(s), Some(buf), Some(meta), Some(n)) =
        (sock_of(env, a[0]), get_u8s(env, a[1]), get_u32s(env, a[2]), get_u32(env, a[3]))
    else {
        return int(env, -EINVAL);
    };
    let keys = if is_nullish(env, a[4]) {
        None
    } else {
        match get_u32s(env, a[4]) {
            Some(k) => Some(&*k),
            None => return int(env, -EINVAL),
        }
    };
    int(env, s.send_batch(buf, meta, n as usize, keys))
}

/// udpSetSession(handle, localIndex, sendKey: Uint8Array(32), recvKey: Uint8Array(32), alg?: 1 | 2) → 0 | -errno
unsafe extern "C" fn udp_set_session(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<5>(env, info);
    let (Some(s), Some(index), Some(tx), Some(rx)) = (sock_of(env, a[0]), get_u32(env, a[1]), get_u8s(env, a[2]), get_u8s(env, a[3]))
    else {
        return int(env, -EINVAL);
    };
    // The data cipher (1 = ChaCha20-Poly1305, the default when absent; 2 = AES-256-GCM).
    let alg = if is_nullish(env, a[4]) { aead::ALG_CHACHA20_POLY1305 } else {
        match get_u32(env, a[4]) {
            Some(v) => v,
            None => return int(env, -EINVAL),
        }
    };
    int(env, s.set_session(index, tx, rx, alg))
}

/// udpRemoveSession(handle, localIndex) → 0 | -ENOENT | -errno
unsafe extern "C" fn udp_remove_session(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let (Some(s), Some(index)) = (sock_of(env, a[0]), get_u32(env, a[1])) else {
        return int(env, -EINVAL);
    };
    int(env, s.remove_session(index))
}

/// udpStartRecv(handle, buf, meta, status: Uint8Array, slots, msgsPerSlot, elemBytes, metaPerSlot, onBatch)
/// → 0 | -errno
unsafe extern "C" fn udp_start_recv(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<9>(env, info);
    let (Some(s), Some(slots), Some(msgs), Some(elem), Some(mps)) =
        (sock_of(env, a[0]), get_u32(env, a[4]), get_u32(env, a[5]), get_u32(env, a[6]), get_u32(env, a[7]))
    else {
        return int(env, -EINVAL);
    };
    if a[8].is_null() {
        return int(env, -EINVAL);
    }
    int(env, s.start_recv(env, a[1], a[2], a[3], a[8], slots as usize, msgs as usize, elem as usize, mps as usize))
}

unsafe extern "C" fn udp_ref(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<2>(env, info);
    let (Some(s), Some(on)) = (sock_of(env, a[0]), get_bool(env, a[1])) else {
        return int(env, -EINVAL);
    };
    int(env, s.set_ref(env, on))
}

unsafe extern "C" fn udp_close(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    match sock_of(env, a[0]) {
        Some(s) => int(env, s.close()),
        None => int(env, -EINVAL),
    }
}

/// udpStats(handle, out: Float64Array(10)): txPackets, txBytes, txDropped, txGsoSends, rxPackets, rxBytes,
/// rxBatches, rxDropped, lastErrno, features.
unsafe extern "C" fn udp_stats(env: napi_env, info: napi_callback_info) -> napi_value {
    use std::sync::atomic::Ordering::Relaxed;
    let a = args::<2>(env, info);
    let (Some(s), Some(out)) = (sock_of(env, a[0]), get_f64s(env, a[1])) else {
        return int(env, -EINVAL);
    };
    let st = &s.stats;
    let v = [
        st.tx_packets.load(Relaxed),
        st.tx_bytes.load(Relaxed),
        st.tx_dropped.load(Relaxed),
        st.tx_gso_sends.load(Relaxed),
        st.rx_packets.load(Relaxed),
        st.rx_bytes.load(Relaxed),
        st.rx_batches.load(Relaxed),
        st.rx_dropped.load(Relaxed),
        st.last_errno.load(Relaxed),
        s.features() as u64,
    ];
    for (o, x) in out.iter_mut().zip(v.iter()) {
        *o = *x as f64;
    }
    int(env, v.len().min(out.len()) as i32)
}

type AeadCell = UnsafeCell<aead::Aead>;

unsafe fn aead_of<'a>(env: napi_env, v: napi_value) -> Option<&'a mut aead::Aead> {
    let p = get_external(env, v)? as *const AeadCell;
    Some(&mut *(*p).get())
}

unsafe extern "C" fn finalize_aead(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    drop(Box::from_raw(data as *mut AeadCell)); // Drop wipes the key
}

unsafe extern "C" fn aead_available(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    let ok = match get_u32(env, a[0]) {
        Some(aead::ALG_CHACHA20_POLY1305) => true,
        Some(aead::ALG_AES256_GCM) => aead::aes_gcm_available(),
        _ => false,
    };
    boolean(env, ok)
}

/// udpSessionCiphers() → bitmask of the data ciphers udpSetSession takes here: 1 ChaCha20-Poly1305, 2 AES-256-GCM
/// (libsodium: only with AES-NI; OpenSSL EVP: always — the caller also checks the CPU). Its presence says the
/// addon knows udpSetSession's `alg` argument.
unsafe extern "C" fn udp_session_ciphers(env: napi_env, _info: napi_callback_info) -> napi_value {
    let aes = if aead::aes_gcm_available() { 2 } else { 0 };
    int(env, 1 | aes)
}

/// aeadCreate(alg, key: Uint8Array(32), headerBytes, aadBytes, nonceOffset, nonceBytes) → handle | -errno
unsafe extern "C" fn aead_create(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<6>(env, info);
    let (Some(alg), Some(key), Some(hb), Some(ab), Some(no), Some(nb)) = (
        get_u32(env, a[0]),
        get_u8s(env, a[1]),
        get_u32(env, a[2]),
        get_u32(env, a[3]),
        get_u32(env, a[4]),
        get_u32(env, a[5]),
    ) else {
        return int(env, -EINVAL);
    };
    let layout =
        aead::Layout { header_bytes: hb as usize, aad_bytes: ab as usize, nonce_offset: no as usize, nonce_bytes: nb as usize };
    match aead::Aead::new(alg, key, layout) {
        Err(e) => int(env, -e),
        Ok(c) => {
            let raw = Box::into_raw(Box::new(UnsafeCell::new(c))) as *mut c_void;
            let mut r = ptr::null_mut();
            napi_create_external(env, raw, Some(finalize_aead), ptr::null_mut(), &mut r);
            r
        }
    }
}

/// aeadSeal(handle, buf, meta, count) → count | -errno
unsafe extern "C" fn aead_seal(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<4>(env, info);
    let (Some(c), Some(buf), Some(meta), Some(n)) =
        (aead_of(env, a[0]), get_u8s(env, a[1]), get_u32s(env, a[2]), get_u32(env, a[3]))
    else {
        return int(env, -EINVAL);
    };
    int(env, c.seal_batch(buf, meta, n as usize))
}

/// aeadOpen(handle, buf, meta, count, status: Uint8Array) → authentic count | -errno
unsafe extern "C" fn aead_open(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<5>(env, info);
    let (Some(c), Some(buf), Some(meta), Some(n), Some(status)) =
        (aead_of(env, a[0]), get_u8s(env, a[1]), get_u32s(env, a[2]), get_u32(env, a[3]), get_u8s(env, a[4]))
    else {
        return int(env, -EINVAL);
    };
    int(env, c.open_batch(buf, meta, n as usize, status))
}

unsafe extern "C" fn aead_destroy(env: napi_env, info: napi_callback_info) -> napi_value {
    let a = args::<1>(env, info);
    match aead_of(env, a[0]) {
        Some(c) => {
            c.wipe();
            int(env, 0)
        }
        None => int(env, -EBADF),
    }
}

/// aeadBackend() → "libsodium" | "openssl-evp": the library behind aeadSeal/aeadOpen in this build.
unsafe extern "C" fn aead_backend(env: napi_env, _info: napi_callback_info) -> napi_value {
    string(env, aead::BACKEND)
}

unsafe extern "C" fn version(env: napi_env, _info: napi_callback_info) -> napi_value {
    string(env, env!("CARGO_PKG_VERSION"))
}

static INIT: Once = Once::new();

#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    let mut aead_ok = true;
    INIT.call_once(|| {
        sys::atexit(udp::on_exit);
    });
    if !aead::backend_init() {
        aead_ok = false;
    }
    export(env, exports, "version", version);
    export(env, exports, "udpOpen", udp_open);
    export(env, exports, "udpLocalPort", udp_local_port);
    export(env, exports, "routeMtu", route_mtu);
    export(env, exports, "udpFeatures", udp_features);
    export(env, exports, "udpSend", udp_send);
    export(env, exports, "udpSetSession", udp_set_session);
    if aead_ok {
        export(env, exports, "udpSessionCiphers", udp_session_ciphers);
    }
    export(env, exports, "udpRemoveSession", udp_remove_session);
    export(env, exports, "udpStartRecv", udp_start_recv);
    export(env, exports, "udpRef", udp_ref);
    export(env, exports, "udpClose", udp_close);
    export(env, exports, "udpStats", udp_stats);
    export(env, exports, "aeadBackend", aead_backend);
    if aead_ok {
        export(env, exports, "aeadAvailable", aead_available);
        export(env, exports, "aeadCreate", aead_create);
        export(env, exports, "aeadSeal", aead_seal);
        export(env, exports, "aeadOpen", aead_open);
        export(env, exports, "aeadDestroy", aead_destroy);
    }
    exports
}
