//! Batch AEAD over packets laid out in one JS-owned buffer: ChaCha20-Poly1305 IETF and AES-256-GCM from
//! libsodium. One native call seals or opens a whole batch in place; keys cross the boundary once.
//!
//! Packet layout at [off, off+len) (meta stride 4: off, len, ip, port — the same meta the UDP calls use):
//!   [0, aadBytes)            associated data (usually the clear frame header)
//!   [nonceOffset, +nonceBytes) nonce source; 8 bytes = u64 counter, nonce = 4 zero bytes ‖ those 8 (WireGuard)
//!   [headerBytes, len-16)    plaintext ↔ ciphertext, in place
//!   [len-16, len)            tag
#[allow(unused_imports)]
use std::os::raw::{c_int, c_void};

pub const TAG_BYTES: usize = 16;
pub const KEY_BYTES: usize = 32;
pub const ALG_CHACHA20_POLY1305: u32 = 1;
pub const ALG_AES256_GCM: u32 = 2;

// Two backends behind one `Aead`: libsodium where the build found it (cfg pilot_sodium, set by build.rs; the
// design card's hot-path AEAD), else OpenSSL's EVP AEADs resolved from the node process itself (node exports
// them), so the addon builds with cargo alone on a machine without libsodium-dev.
#[cfg(pilot_sodium)]
mod backend {
    use std::os::raw::{c_int, c_void};
    pub const NAME: &str = "libsodium";
    extern "C" {
        pub fn sodium_init() -> c_int;
        pub fn sodium_memzero(p: *mut c_void, len: usize);
        pub fn crypto_aead_chacha20poly1305_ietf_encrypt_detached(
            c: *mut u8, mac: *mut u8, maclen: *mut u64, m: *const u8, mlen: u64, ad: *const u8, adlen: u64,
            nsec: *const u8, npub: *const u8, k: *const u8,
        ) -> c_int;
        pub fn crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            m: *mut u8, nsec: *mut u8, c: *const u8, clen: u64, mac: *const u8, ad: *const u8, adlen: u64,
            npub: *const u8, k: *const u8,
        ) -> c_int;
        pub fn crypto_aead_aes256gcm_is_available() -> c_int;
        pub fn crypto_aead_aes256gcm_statebytes() -> usize;
        pub fn crypto_aead_aes256gcm_beforenm(state: *mut u8, k: *const u8) -> c_int;
        pub fn crypto_aead_aes256gcm_encrypt_detached_afternm(
            c: *mut u8, mac: *mut u8, maclen: *mut u64, m: *const u8, mlen: u64, ad: *const u8, adlen: u64,
            nsec: *const u8, npub: *const u8, state: *const u8,
        ) -> c_int;
        pub fn crypto_aead_aes256gcm_decrypt_detached_afternm(
            m: *mut u8, nsec: *mut u8, c: *const u8, clen: u64, mac: *const u8, ad: *const u8, adlen: u64,
            npub: *const u8, state: *const u8,
        ) -> c_int;
    }
    pub fn init() -> bool {
        unsafe { sodium_init() >= 0 }
    }
    pub fn wipe(p: *mut u8, len: usize) {
        unsafe { sodium_memzero(p as *mut c_void, len) }
    }
}

#[cfg(not(pilot_sodium))]
mod backend {
    use std::os::raw::{c_int, c_void};
    pub const NAME: &str = "openssl-evp";
    pub const EVP_CTRL_AEAD_GET_TAG: c_int = 0x10;
    pub const EVP_CTRL_AEAD_SET_TAG: c_int = 0x11;
    extern "C" {
        pub fn EVP_chacha20_poly1305() -> *const c_void;
        pub fn EVP_aes_256_gcm() -> *const c_void;
        pub fn EVP_CIPHER_CTX_new() -> *mut c_void;
        pub fn EVP_CIPHER_CTX_free(ctx: *mut c_void);
        pub fn EVP_CIPHER_CTX_ctrl(ctx: *mut c_void, typ: c_int, arg: c_int, ptr: *mut c_void) -> c_int;
        pub fn EVP_EncryptInit_ex(ctx: *mut c_void, cipher: *const c_void, eng: *mut c_void, key: *const u8, iv: *const u8) -> c_int;
        pub fn EVP_DecryptInit_ex(ctx: *mut c_void, cipher: *const c_void, eng: *mut c_void, key: *const u8, iv: *const u8) -> c_int;
        pub fn EVP_EncryptUpdate(ctx: *mut c_void, out: *mut u8, outl: *mut c_int, inp: *const u8, inl: c_int) -> c_int;
        pub fn EVP_DecryptUpdate(ctx: *mut c_void, out: *mut u8, outl: *mut c_int, inp: *const u8, inl: c_int) -> c_int;
        pub fn EVP_EncryptFinal_ex(ctx: *mut c_void, out: *mut u8, outl: *mut c_int) -> c_int;
        pub fn EVP_DecryptFinal_ex(ctx: *mut c_void, out: *mut u8, outl: *mut c_int) -> c_int;
    }
    pub fn init() -> bool {
        // The symbols resolve at load time from the node executable; a node without them fails to load the
        // addon, which the JS loader reports as a value.
        true
    }
}

/// Ids for `Aead`s (libsodium build): the per-thread AES state slot is keyed by them, so a freed Aead's memory
/// reused by a new one can never be mistaken for it.
#[cfg(pilot_sodium)]
static NEXT_AEAD_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One expanded AES-256-GCM state per thread (the JS thread seals, the socket's reader thread opens): the state
/// of the Aead that used it last. Wiped when that Aead is wiped on this thread, when another key replaces it,
/// and at thread exit.
#[cfg(pilot_sodium)]
struct AesSlot {
    id: u64,
    state: Vec<u128>,
}

#[cfg(pilot_sodium)]
impl AesSlot {
    fn clear(&mut self) {
        if !self.state.is_empty() {
            backend::wipe(self.state.as_mut_ptr() as *mut u8, self.state.len() * 16);
        }
        self.id = 0;
    }
}

#[cfg(pilot_sodium)]
impl Drop for AesSlot {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(pilot_sodium)]
thread_local! {
    static AES_SLOT: std::cell::RefCell<AesSlot> = const { std::cell::RefCell::new(AesSlot { id: 0, state: Vec::new() }) };
}

/// Which library does the AEAD work in this build ("libsodium" or "openssl-evp").
pub const BACKEND: &str = backend::NAME;

pub fn backend_init() -> bool {
    backend::init()
}

#[cfg(pilot_sodium)]
pub fn aes_gcm_available() -> bool {
    unsafe { backend::crypto_aead_aes256gcm_is_available() == 1 }
}

#[cfg(not(pilot_sodium))]
pub fn aes_gcm_available() -> bool {
    true // OpenSSL has a software AES-GCM when AES-NI is absent
}

/// Raw pointers into one packet: associated data, body (sealed/opened in place), tag; and its 12-byte nonce.
struct Parts {
    nonce: [u8; 12],
    aad: *mut u8,
    aad_len: usize,
    body: *mut u8,
    body_len: usize,
    tag: *mut u8,
}

#[derive(Clone, Copy)]
pub struct Layout {
    pub header_bytes: usize,
    pub aad_bytes: usize,
    pub nonce_offset: usize,
    pub nonce_bytes: usize,
}

impl Layout {
    pub fn valid(&self) -> bool {
        (self.nonce_bytes == 8 || self.nonce_bytes == 12)
            && self.aad_bytes <= self.header_bytes
            && self.nonce_offset + self.nonce_bytes <= self.header_bytes
    }
}

pub struct Aead {
    #[cfg_attr(not(pilot_sodium), allow(dead_code))]
    alg: u32,
    layout: Layout,
    /// libsodium: the 32-byte key (ChaCha's, or AES-GCM's raw key: its expanded state lives in a per-thread
    /// one-slot cache, see `AesSlot`, so an idle session holds 32 bytes per direction instead of 512).
    #[cfg(pilot_sodium)]
    key: Vec<u128>,
    /// Unique per Aead ever made in this process (never reused): what the AES state cache is keyed by.
    #[cfg(pilot_sodium)]
    id: u64,
    /// OpenSSL: one keyed context per direction, re-armed with a nonce per packet.
    #[cfg(not(pilot_sodium))]
    enc: *mut c_void,
    #[cfg(not(pilot_sodium))]
    dec: *mut c_void,
    pub destroyed: bool,
}

impl Aead {
    #[cfg(pilot_sodium)]
    pub fn new(alg: u32, key: &[u8], layout: Layout) -> Result<Aead, c_int> {
        if key.len() != KEY_BYTES || !layout.valid() {
            return Err(crate::sys::EINVAL);
        }
        match alg {
            ALG_CHACHA20_POLY1305 | ALG_AES256_GCM => {
                if alg == ALG_AES256_GCM && !aes_gcm_available() {
                    return Err(crate::sys::EOPNOTSUPP);
                }
                let mut k = vec![0u128; 2];
                unsafe { std::ptr::copy_nonoverlapping(key.as_ptr(), k.as_mut_ptr() as *mut u8, KEY_BYTES) };
                let id = NEXT_AEAD_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(Aead { alg, layout, key: k, id, destroyed: false })
            }
            _ => Err(crate::sys::EINVAL),
        }
    }

    #[cfg(not(pilot_sodium))]
    pub fn new(alg: u32, key: &[u8], layout: Layout) -> Result<Aead, c_int> {
        use backend::*;
        if key.len() != KEY_BYTES || !layout.valid() {
            return Err(crate::sys::EINVAL);
        }
        let cipher = match alg {
            ALG_CHACHA20_POLY1305 => unsafe { EVP_chacha20_poly1305() },
            ALG_AES256_GCM => unsafe { EVP_aes_256_gcm() },
            _ => return Err(crate::sys::EINVAL),
        };
        if cipher.is_null() {
            return Err(crate::sys::EOPNOTSUPP);
        }
        unsafe {
            let enc = EVP_CIPHER_CTX_new();
            let dec = EVP_CIPHER_CTX_new();
            let mut me = Aead { alg, layout, enc, dec, destroyed: false };
            let null = std::ptr::null_mut();
            if enc.is_null()
                || dec.is_null()
                || EVP_EncryptInit_ex(enc, cipher, null, key.as_ptr(), std::ptr::null()) != 1
                || EVP_DecryptInit_ex(dec, cipher, null, key.as_ptr(), std::ptr::null()) != 1
            {
                me.wipe();
                return Err(crate::sys::EOPNOTSUPP);
            }
            Ok(me)
        }
    }

    #[cfg(pilot_sodium)]
    pub fn wipe(&mut self) {
        backend::wipe(self.key.as_mut_ptr() as *mut u8, self.key.len() * 16);
        // This thread's expanded AES state, if it is ours. (Another thread's slot keeps it until that thread
        // expands another key or exits; both wipe it.)
        let id = self.id;
        AES_SLOT.with(|c| {
            if let Ok(mut slot) = c.try_borrow_mut() {
                if slot.id == id {
                    slot.clear();
                }
            }
        });
        self.destroyed = true;
    }

    /// Run `f` with this Aead's expanded AES-256-GCM state: this thread's slot, expanded from the raw key when
    /// the slot last held another Aead's (~100 ns; a batch of one session's packets expands once).
    #[cfg(pilot_sodium)]
    #[inline]
    fn with_aes_state<R>(&self, f: impl FnOnce(*const u8) -> R) -> R {
        AES_SLOT.with(|c| {
            let mut slot = c.borrow_mut();
            if slot.id != self.id {
                if slot.state.is_empty() {
                    let words = unsafe { backend::crypto_aead_aes256gcm_statebytes() }.div_ceil(16);
                    slot.state = vec![0u128; words];
                }
                unsafe { backend::crypto_aead_aes256gcm_beforenm(slot.state.as_mut_ptr() as *mut u8, self.key.as_ptr() as *const u8) };
                slot.id = self.id;
            }
            f(slot.state.as_ptr() as *const u8)
        })
    }

    #[cfg(not(pilot_sodium))]
    pub fn wipe(&mut self) {
        // EVP_CIPHER_CTX_free cleanses the key schedule.
        unsafe {
            if !self.enc.is_null() {
                backend::EVP_CIPHER_CTX_free(self.enc);
            }
            if !self.dec.is_null() {
                backend::EVP_CIPHER_CTX_free(self.dec);
            }
        }
        self.enc = std::ptr::null_mut();
        self.dec = std::ptr::null_mut();
        self.destroyed = true;
    }

    #[inline]
    fn nonce(&self, pkt: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        let l = &self.layout;
        let src = &pkt[l.nonce_offset..l.nonce_offset + l.nonce_bytes];
        n[12 - l.nonce_bytes..].copy_from_slice(src);
        n
    }

    #[inline]
    fn fits(&self, len: usize) -> bool {
        len >= self.layout.header_bytes + TAG_BYTES
    }

    /// Where the AEAD inputs of one packet are (the layout at the top of this file). Caller checked `fits`.
    #[inline]
    fn parts(&self, pkt: &mut [u8]) -> Parts {
        let l = self.layout;
        let nonce = self.nonce(pkt);
        let len = pkt.len();
        let p = pkt.as_mut_ptr();
        // In bounds: fits() guarantees header_bytes + TAG_BYTES <= len.
        unsafe {
            Parts {
                nonce,
                aad: p,
                aad_len: l.aad_bytes,
                body: p.add(l.header_bytes),
                body_len: len - TAG_BYTES - l.header_bytes,
                tag: p.add(len - TAG_BYTES),
            }
        }
    }

    /// Seal one packet in place. Caller checked bounds with `fits`.
    #[cfg(pilot_sodium)]
    #[inline]
    fn seal_one(&self, pkt: &mut [u8]) {
        use backend::*;
        let x = self.parts(pkt);
        let k = self.key.as_ptr() as *const u8;
        let (null, none) = (std::ptr::null(), std::ptr::null_mut());
        unsafe {
            if self.alg == ALG_CHACHA20_POLY1305 {
                crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                    x.body, x.tag, none, x.body, x.body_len as u64, x.aad, x.aad_len as u64, null, x.nonce.as_ptr(), k,
                );
            } else {
                self.with_aes_state(|st| {
                    crypto_aead_aes256gcm_encrypt_detached_afternm(
                        x.body, x.tag, none, x.body, x.body_len as u64, x.aad, x.aad_len as u64, null, x.nonce.as_ptr(), st,
                    )
                });
            }
        }
    }

    #[cfg(pilot_sodium)]
    #[inline]
    fn open_one(&self, pkt: &mut [u8]) -> bool {
        use backend::*;
        let x = self.parts(pkt);
        let k = self.key.as_ptr() as *const u8;
        let none = std::ptr::null_mut();
        let r = unsafe {
            if self.alg == ALG_CHACHA20_POLY1305 {
                crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                    x.body, none, x.body, x.body_len as u64, x.tag, x.aad, x.aad_len as u64, x.nonce.as_ptr(), k,
                )
            } else {
                self.with_aes_state(|st| {
                    crypto_aead_aes256gcm_decrypt_detached_afternm(
                        x.body, none, x.body, x.body_len as u64, x.tag, x.aad, x.aad_len as u64, x.nonce.as_ptr(), st,
                    )
                })
            }
        };
        r == 0
    }

    #[cfg(not(pilot_sodium))]
    #[inline]
    fn seal_one(&self, pkt: &mut [u8]) {
        use backend::*;
        let x = self.parts(pkt);
        let (null, none) = (std::ptr::null(), std::ptr::null_mut());
        let mut n: c_int = 0;
        unsafe {
            EVP_EncryptInit_ex(self.enc, null, none, std::ptr::null(), x.nonce.as_ptr());
            if x.aad_len > 0 {
                EVP_EncryptUpdate(self.enc, none as *mut u8, &mut n, x.aad, x.aad_len as c_int);
            }
            EVP_EncryptUpdate(self.enc, x.body, &mut n, x.body, x.body_len as c_int);
            EVP_EncryptFinal_ex(self.enc, x.body.add(n as usize), &mut n);
            EVP_CIPHER_CTX_ctrl(self.enc, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES as c_int, x.tag as *mut c_void);
        }
    }

    #[cfg(not(pilot_sodium))]
    #[inline]
    fn open_one(&self, pkt: &mut [u8]) -> bool {
        use backend::*;
        let x = self.parts(pkt);
        let (null, none) = (std::ptr::null(), std::ptr::null_mut());
        let mut n: c_int = 0;
        let mut fin = [0u8; 16];
        unsafe {
            EVP_DecryptInit_ex(self.dec, null, none, std::ptr::null(), x.nonce.as_ptr()) == 1
                && (x.aad_len == 0 || EVP_DecryptUpdate(self.dec, none as *mut u8, &mut n, x.aad, x.aad_len as c_int) == 1)
                && EVP_DecryptUpdate(self.dec, x.body, &mut n, x.body, x.body_len as c_int) == 1
                && EVP_CIPHER_CTX_ctrl(self.dec, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES as c_int, x.tag as *mut c_void) == 1
                && EVP_DecryptFinal_ex(self.dec, fin.as_mut_ptr(), &mut n) == 1
        }
    }

    /// The Noise data-frame layout (PND1, src/wire/noise-frame.ts): the 16-byte header is the associated
    /// data and its bytes 8..16 the u64 LE counter, i.e. the nonce's tail.
    pub const NOISE_DATA: Layout = Layout { header_bytes: 16, aad_bytes: 16, nonce_offset: 8, nonce_bytes: 8 };

    /// Seal one packet in place; false (nothing written) when it is too short for the layout.
    #[inline]
    pub fn seal_packet(&self, pkt: &mut [u8]) -> bool {
        if self.destroyed || !self.fits(pkt.len()) {
            return false;
        }
        self.seal_one(pkt);
        true
    }

    /// Open one packet in place; false when forged or too short.
    #[inline]
    pub fn open_packet(&self, pkt: &mut [u8]) -> bool {
        !self.destroyed && self.fits(pkt.len()) && self.open_one(pkt)
    }

    /// Seal `count` packets. All bounds are checked first so a bad batch changes nothing: -EINVAL.
    pub fn seal_batch(&self, buf: &mut [u8], meta: &[u32], count: usize) -> i32 {
        if self.destroyed {
            return -crate::sys::EBADF;
        }
        if meta.len() < count * 4 {
            return -crate::sys::EINVAL;
        }
        for i in 0..count {
            let (off, len) = (meta[i * 4] as usize, meta[i * 4 + 1] as usize);
            if off + len > buf.len() || !self.fits(len) {
                return -crate::sys::EINVAL;
            }
        }
        for i in 0..count {
            let (off, len) = (meta[i * 4] as usize, meta[i * 4 + 1] as usize);
            self.seal_one(&mut buf[off..off + len]);
        }
        count as i32
    }

    /// Open `count` packets in place; status[i] = 1 when authentic, else 0 (bad bounds count as forged).
    /// Returns the number of authentic packets.
    pub fn open_batch(&self, buf: &mut [u8], meta: &[u32], count: usize, status: &mut [u8]) -> i32 {
        if self.destroyed {
            return -crate::sys::EBADF;
        }
        if meta.len() < count * 4 || status.len() < count {
            return -crate::sys::EINVAL;
        }
        let mut good = 0;
        for i in 0..count {
            let (off, len) = (meta[i * 4] as usize, meta[i * 4 + 1] as usize);
            let ok = off + len <= buf.len() && self.fits(len) && self.open_one(&mut buf[off..off + len]);
            status[i] = ok as u8;
            good += ok as i32;
        }
        good
    }
}

// The OpenSSL backend's contexts are raw pointers; an Aead moves between threads (the socket's key table) but
// is only ever used by one thread at a time: the receive table under its mutex by the reader thread, the send
// table by the JS thread alone (src/udp.rs).
unsafe impl Send for Aead {}

impl Drop for Aead {
    fn drop(&mut self) {
        self.wipe();
    }
}
