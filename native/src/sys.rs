//! Hand-written Linux x86_64 glibc declarations (no `libc` crate: crates.io is unreachable here).
#![allow(non_camel_case_types, dead_code)]
use std::os::raw::{c_int, c_long, c_short, c_uint, c_void};

pub const AF_INET: c_int = 2;
pub const SOCK_DGRAM: c_int = 2;
pub const SOCK_CLOEXEC: c_int = 0o2000000;
pub const SOCK_NONBLOCK: c_int = 0o4000;
pub const SOL_SOCKET: c_int = 1;
pub const SO_REUSEADDR: c_int = 2;
pub const SO_SNDBUF: c_int = 7;
pub const SO_RCVBUF: c_int = 8;
pub const SO_SNDBUFFORCE: c_int = 32;
pub const SO_RCVBUFFORCE: c_int = 33;
pub const IPPROTO_UDP: c_int = 17;
pub const IPPROTO_IP: c_int = 0;
pub const IP_MTU: c_int = 14;
pub const SOL_UDP: c_int = 17;
pub const UDP_SEGMENT: c_int = 103;
pub const UDP_GRO: c_int = 104;
pub const MSG_DONTWAIT: c_int = 0x40;
pub const MSG_TRUNC: c_int = 0x20;
pub const POLLIN: c_short = 1;
pub const POLLOUT: c_short = 4;
pub const EFD_CLOEXEC: c_int = 0o2000000;
pub const EFD_NONBLOCK: c_int = 0o4000;

pub const ENOENT: c_int = 2;
pub const EINTR: c_int = 4;
pub const EIO: c_int = 5;
pub const EAGAIN: c_int = 11;
pub const ENOMEM: c_int = 12;
pub const EINVAL: c_int = 22;
pub const EMSGSIZE: c_int = 90;
pub const ENOPROTOOPT: c_int = 92;
pub const EOPNOTSUPP: c_int = 95;
pub const ENOBUFS: c_int = 105;
pub const ENOKEY: c_int = 126;
pub const EBADF: c_int = 9;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct sockaddr_in {
    pub sin_family: u16,
    pub sin_port: u16, // network order
    pub sin_addr: u32, // network order
    pub sin_zero: [u8; 8],
}
impl sockaddr_in {
    pub const fn zeroed() -> Self {
        sockaddr_in { sin_family: 0, sin_port: 0, sin_addr: 0, sin_zero: [0; 8] }
    }
    /// `ip` is a.b.c.d as the number (a<<24)|(b<<16)|(c<<8)|d, the convention used across the JS boundary.
    pub fn v4(ip: u32, port: u16) -> Self {
        sockaddr_in { sin_family: AF_INET as u16, sin_port: port.to_be(), sin_addr: ip.to_be(), sin_zero: [0; 8] }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct iovec {
    pub iov_base: *mut c_void,
    pub iov_len: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct msghdr {
    pub msg_name: *mut c_void,
    pub msg_namelen: u32,
    pub msg_iov: *mut iovec,
    pub msg_iovlen: usize,
    pub msg_control: *mut c_void,
    pub msg_controllen: usize,
    pub msg_flags: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct mmsghdr {
    pub msg_hdr: msghdr,
    pub msg_len: c_uint,
}
impl mmsghdr {
    pub const fn zeroed() -> Self {
        mmsghdr {
            msg_hdr: msghdr {
                msg_name: std::ptr::null_mut(),
                msg_namelen: 0,
                msg_iov: std::ptr::null_mut(),
                msg_iovlen: 0,
                msg_control: std::ptr::null_mut(),
                msg_controllen: 0,
                msg_flags: 0,
            },
            msg_len: 0,
        }
    }
}

#[repr(C)]
pub struct cmsghdr {
    pub cmsg_len: usize,
    pub cmsg_level: c_int,
    pub cmsg_type: c_int,
}
pub const CMSG_HDR_BYTES: usize = std::mem::size_of::<cmsghdr>(); // 16
/// CMSG_SPACE(sizeof(int)) on x86_64: header 16 + data aligned to 8.
pub const CMSG_INT_SPACE: usize = CMSG_HDR_BYTES + 8;
pub const CMSG_INT_LEN: usize = CMSG_HDR_BYTES + 4;

#[repr(C)]
pub struct pollfd {
    pub fd: c_int,
    pub events: c_short,
    pub revents: c_short,
}

#[repr(C)]
pub struct timespec {
    pub tv_sec: c_long,
    pub tv_nsec: c_long,
}

extern "C" {
    pub fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    pub fn bind(fd: c_int, addr: *const sockaddr_in, len: u32) -> c_int;
    pub fn connect(fd: c_int, addr: *const sockaddr_in, len: u32) -> c_int;
    pub fn getsockname(fd: c_int, addr: *mut sockaddr_in, len: *mut u32) -> c_int;
    pub fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: u32) -> c_int;
    pub fn getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut u32) -> c_int;
    pub fn sendmmsg(fd: c_int, msgs: *mut mmsghdr, vlen: c_uint, flags: c_int) -> c_int;
    pub fn recvmmsg(fd: c_int, msgs: *mut mmsghdr, vlen: c_uint, flags: c_int, timeout: *mut timespec) -> c_int;
    pub fn poll(fds: *mut pollfd, nfds: u64, timeout_ms: c_int) -> c_int;
    pub fn eventfd(initval: c_uint, flags: c_int) -> c_int;
    pub fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
    pub fn close(fd: c_int) -> c_int;
    pub fn __errno_location() -> *mut c_int;
    pub fn atexit(cb: extern "C" fn()) -> c_int;
}

pub fn errno() -> c_int {
    unsafe { *__errno_location() }
}

pub fn setsockopt_int(fd: c_int, level: c_int, name: c_int, v: c_int) -> c_int {
    let r = unsafe { setsockopt(fd, level, name, &v as *const c_int as *const c_void, 4) };
    if r < 0 { -errno() } else { 0 }
}

pub fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> c_int {
    let mut v: c_int = 0;
    let mut len: u32 = 4;
    let r = unsafe { getsockopt(fd, level, name, &mut v as *mut c_int as *mut c_void, &mut len) };
    if r < 0 { -errno() } else { v }
}
