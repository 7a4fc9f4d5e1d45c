//! Batch AEAD over packets laid out in one JS-owned buffer: ChaCha20-Poly1305 IETF and AES-256-GCM from
//! libsodium. One native call seals or opens a whole batch in place; keys cross the boundary once.
//!
//! Packet layout at [off, off+len) (meta stride 4: off, len, ip, port — the same meta the UDP calls use):
//!   [0, aadBytes)            associated data (usually the clear frame header)
//!   [nonceOffset, +nonceBytes) nonce source; 8 bytes = u64 counter, nonce = 4 zero bytes ‖ those 8 (WireGuard)
//!   [headerBytes, len-16)    plaintext ↔ ciphertext, in place
//!   [len-16, len)            tag
use std::os::raw::{c_int, c_void};

pub const TAG_BYTES: usize = 16;
pub const KEY_BYTES: usize = 32;
pub const ALG_CHACHA20_POLY1305: u32 = 1;
pub const ALG_AES256_GCM: u32 = 2;

extern "C" {
    pub fn sodium_init() -> c_int;
    fn sodium_memzero(p: *mut c_void, len: usize);
    fn crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        c: *mut u8, mac: *mut u8, maclen: *mut u64, m: *const u8, mlen: u64, ad: *const u8, adlen: u64,
        nsec: *const u8, npub: *const u8, k: *const u8,
    ) -> c_int;
    fn crypto_aead_chacha20poly1305_ietf_decrypt_detached(
        m: *mut u8, nsec: *mut u8, c: *const u8, clen: u64, mac: *const u8, ad: *const u8, adlen: u64,
        npub: *const u8, k: *const u8,
    ) -> c_int;
    fn crypto_aead_aes256gcm_is_available() -> c_int;
    fn crypto_aead_aes256gcm_statebytes() -> usize;
    fn crypto_aead_aes256gcm_beforenm(state: *mut u8, k: *const u8) -> c_int;
    fn crypto_aead_aes256gcm_encrypt_detached_afternm(
        c: *mut u8, mac: *mut u8, maclen: *mut u64, m: *const u8, mlen: u64, ad: *const u8, adlen: u64,
        nsec: *const u8, npub: *const u8, state: *const u8,
    ) -> c_int;
    fn crypto_aead_aes256gcm_decrypt_detached_afternm(
        m: *mut u8, nsec: *mut u8, c: *const u8, clen: u64, mac: *const u8, ad: *const u8, adlen: u64,
        npub: *const u8, state: *const u8,
    ) -> c_int;
}

pub fn aes_gcm_available() -> bool {
    unsafe { crypto_aead_aes256gcm_is_available() == 1 }
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
    alg: u32,
    layout: Layout,
    /// ChaCha: the 32-byte key. AES-GCM: libsodium's expanded state (needs 16-byte alignment, hence u128).
    key: Vec<u128>,
    pub destroyed: bool,
}

impl Aead {
    pub fn new(alg: u32, key: &[u8], layout: Layout) -> Result<Aead, c_int> {
        if key.len() != KEY_BYTES || !layout.valid() {
            return Err(crate::sys::EINVAL);
        }
        match alg {
            ALG_CHACHA20_POLY1305 => {
                let mut k = vec![0u128; 2];
                unsafe { std::ptr::copy_nonoverlapping(key.as_ptr(), k.as_mut_ptr() as *mut u8, KEY_BYTES) };
                Ok(Aead { alg, layout, key: k, destroyed: false })
            }
            ALG_AES256_GCM => {
                if !aes_gcm_available() {
                    return Err(crate::sys::EOPNOTSUPP);
                }
                let words = unsafe { crypto_aead_aes256gcm_statebytes() }.div_ceil(16);
                let mut st = vec![0u128; words];
                unsafe { crypto_aead_aes256gcm_beforenm(st.as_mut_ptr() as *mut u8, key.as_ptr()) };
                Ok(Aead { alg, layout, key: st, destroyed: false })
            }
            _ => Err(crate::sys::EINVAL),
        }
    }

    pub fn wipe(&mut self) {
        unsafe { sodium_memzero(self.key.as_mut_ptr() as *mut c_void, self.key.len() * 16) };
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

    /// Seal one packet in place. Caller checked bounds with `fits`.
    #[inline]
    fn seal_one(&self, pkt: &mut [u8]) {
        let l = self.layout;
        let nonce = self.nonce(pkt);
        let len = pkt.len();
        let body_len = (len - TAG_BYTES - l.header_bytes) as u64;
        let p = pkt.as_mut_ptr();
        unsafe {
            let body = p.add(l.header_bytes);
            let tag = p.add(len - TAG_BYTES);
            let k = self.key.as_ptr() as *const u8;
            let null = std::ptr::null();
            if self.alg == ALG_CHACHA20_POLY1305 {
                crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                    body, tag, std::ptr::null_mut(), body, body_len, p, l.aad_bytes as u64, null, nonce.as_ptr(), k,
                );
            } else {
                crypto_aead_aes256gcm_encrypt_detached_afternm(
                    body, tag, std::ptr::null_mut(), body, body_len, p, l.aad_bytes as u64, null, nonce.as_ptr(), k,
                );
            }
        }
    }

    #[inline]
    fn open_one(&self, pkt: &mut [u8]) -> bool {
        let l = self.layout;
        let nonce = self.nonce(pkt);
        let len = pkt.len();
        let body_len = (len - TAG_BYTES - l.header_bytes) as u64;
        let p = pkt.as_mut_ptr();
        unsafe {
            let body = p.add(l.header_bytes);
            let tag = p.add(len - TAG_BYTES);
            let k = self.key.as_ptr() as *const u8;
            let r = if self.alg == ALG_CHACHA20_POLY1305 {
                crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                    body, std::ptr::null_mut(), body, body_len, tag, p, l.aad_bytes as u64, nonce.as_ptr(), k,
                )
            } else {
                crypto_aead_aes256gcm_decrypt_detached_afternm(
                    body, std::ptr::null_mut(), body, body_len, tag, p, l.aad_bytes as u64, nonce.as_ptr(), k,
                )
            };
            r == 0
        }
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

impl Drop for Aead {
    fn drop(&mut self) {
        self.wipe();
    }
}
