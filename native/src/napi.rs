//! The few Node-API (v8) functions this addon calls, declared by hand: the `napi` crate is not available
//! offline. Symbols resolve from the node executable at dlopen time.
#![allow(non_camel_case_types, dead_code)]
use std::os::raw::{c_char, c_void};
use std::ptr;

pub type napi_env = *mut c_void;
pub type napi_value = *mut c_void;
pub type napi_ref = *mut c_void;
pub type napi_callback_info = *mut c_void;
pub type napi_threadsafe_function = *mut c_void;
pub type napi_status = i32;
pub type napi_callback = unsafe extern "C" fn(env: napi_env, info: napi_callback_info) -> napi_value;
pub type napi_finalize = unsafe extern "C" fn(env: napi_env, data: *mut c_void, hint: *mut c_void);
pub type napi_threadsafe_function_call_js =
    unsafe extern "C" fn(env: napi_env, js_cb: napi_value, context: *mut c_void, data: *mut c_void);
pub type napi_cleanup_hook = unsafe extern "C" fn(arg: *mut c_void);

pub const NAPI_OK: napi_status = 0;
pub const NAPI_PENDING_EXCEPTION: napi_status = 10;
pub const NAPI_CLOSING: napi_status = 16;
pub const NAPI_UINT8_ARRAY: i32 = 1;
pub const NAPI_UINT32_ARRAY: i32 = 6;
pub const NAPI_FLOAT64_ARRAY: i32 = 8;
pub const TSFN_RELEASE: i32 = 0;
pub const TSFN_NONBLOCKING: i32 = 0;

extern "C" {
    pub fn napi_create_function(
        env: napi_env,
        name: *const c_char,
        len: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub fn napi_set_named_property(env: napi_env, obj: napi_value, name: *const c_char, v: napi_value) -> napi_status;
    pub fn napi_get_cb_info(
        env: napi_env,
        info: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;
    pub fn napi_typeof(env: napi_env, v: napi_value, r: *mut i32) -> napi_status;
    pub fn napi_get_value_uint32(env: napi_env, v: napi_value, r: *mut u32) -> napi_status;
    pub fn napi_get_value_int32(env: napi_env, v: napi_value, r: *mut i32) -> napi_status;
    pub fn napi_get_value_bool(env: napi_env, v: napi_value, r: *mut bool) -> napi_status;
    pub fn napi_create_int32(env: napi_env, v: i32, r: *mut napi_value) -> napi_status;
    pub fn napi_create_uint32(env: napi_env, v: u32, r: *mut napi_value) -> napi_status;
    pub fn napi_get_boolean(env: napi_env, v: bool, r: *mut napi_value) -> napi_status;
    pub fn napi_create_string_utf8(env: napi_env, s: *const c_char, len: usize, r: *mut napi_value) -> napi_status;
    pub fn napi_get_undefined(env: napi_env, r: *mut napi_value) -> napi_status;
    pub fn napi_get_typedarray_info(
        env: napi_env,
        v: napi_value,
        ty: *mut i32,
        len: *mut usize,
        data: *mut *mut c_void,
        ab: *mut napi_value,
        off: *mut usize,
    ) -> napi_status;
    pub fn napi_create_external(
        env: napi_env,
        data: *mut c_void,
        fin: Option<napi_finalize>,
        hint: *mut c_void,
        r: *mut napi_value,
    ) -> napi_status;
    pub fn napi_get_value_external(env: napi_env, v: napi_value, r: *mut *mut c_void) -> napi_status;
    pub fn napi_create_reference(env: napi_env, v: napi_value, count: u32, r: *mut napi_ref) -> napi_status;
    pub fn napi_delete_reference(env: napi_env, r: napi_ref) -> napi_status;
    pub fn napi_call_function(
        env: napi_env,
        recv: napi_value,
        f: napi_value,
        argc: usize,
        argv: *const napi_value,
        r: *mut napi_value,
    ) -> napi_status;
    pub fn napi_get_and_clear_last_exception(env: napi_env, r: *mut napi_value) -> napi_status;
    pub fn napi_fatal_exception(env: napi_env, e: napi_value) -> napi_status;
    pub fn napi_create_threadsafe_function(
        env: napi_env,
        func: napi_value,
        async_resource: napi_value,
        async_resource_name: napi_value,
        max_queue_size: usize,
        initial_thread_count: usize,
        thread_finalize_data: *mut c_void,
        thread_finalize_cb: Option<napi_finalize>,
        context: *mut c_void,
        call_js_cb: Option<napi_threadsafe_function_call_js>,
        result: *mut napi_threadsafe_function,
    ) -> napi_status;
    pub fn napi_call_threadsafe_function(f: napi_threadsafe_function, data: *mut c_void, mode: i32) -> napi_status;
    pub fn napi_release_threadsafe_function(f: napi_threadsafe_function, mode: i32) -> napi_status;
    pub fn napi_ref_threadsafe_function(env: napi_env, f: napi_threadsafe_function) -> napi_status;
    pub fn napi_unref_threadsafe_function(env: napi_env, f: napi_threadsafe_function) -> napi_status;
    pub fn napi_add_env_cleanup_hook(env: napi_env, f: napi_cleanup_hook, arg: *mut c_void) -> napi_status;
    pub fn napi_remove_env_cleanup_hook(env: napi_env, f: napi_cleanup_hook, arg: *mut c_void) -> napi_status;
}

/// Up to N call arguments; missing ones are null (helpers below then report EINVAL).
pub unsafe fn args<const N: usize>(env: napi_env, info: napi_callback_info) -> [napi_value; N] {
    let mut argv: [napi_value; N] = [ptr::null_mut(); N];
    let mut argc = N;
    napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut());
    argv
}

pub unsafe fn get_u32(env: napi_env, v: napi_value) -> Option<u32> {
    let mut r = 0u32;
    (!v.is_null() && napi_get_value_uint32(env, v, &mut r) == NAPI_OK).then_some(r)
}

/// True for `undefined` and `null` (optional arguments).
pub unsafe fn is_nullish(env: napi_env, v: napi_value) -> bool {
    let mut t = -1i32;
    v.is_null() || (napi_typeof(env, v, &mut t) == NAPI_OK && (t == 0 || t == 1))
}

pub unsafe fn get_bool(env: napi_env, v: napi_value) -> Option<bool> {
    let mut r = false;
    (!v.is_null() && napi_get_value_bool(env, v, &mut r) == NAPI_OK).then_some(r)
}

/// A typed array's element type, element count and data pointer (already offset into its ArrayBuffer).
pub unsafe fn get_typed(env: napi_env, v: napi_value) -> Option<(i32, usize, *mut u8)> {
    if v.is_null() {
        return None;
    }
    let (mut ty, mut len, mut data, mut off) = (0i32, 0usize, ptr::null_mut::<c_void>(), 0usize);
    let mut ab: napi_value = ptr::null_mut();
    if napi_get_typedarray_info(env, v, &mut ty, &mut len, &mut data, &mut ab, &mut off) != NAPI_OK {
        return None;
    }
    Some((ty, len, data as *mut u8))
}

pub unsafe fn get_u8s<'a>(env: napi_env, v: napi_value) -> Option<&'a mut [u8]> {
    match get_typed(env, v)? {
        (NAPI_UINT8_ARRAY, len, p) => Some(if len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(p, len) }),
        _ => None,
    }
}

pub unsafe fn get_u32s<'a>(env: napi_env, v: napi_value) -> Option<&'a mut [u32]> {
    match get_typed(env, v)? {
        (NAPI_UINT32_ARRAY, len, p) => {
            Some(if len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(p as *mut u32, len) })
        }
        _ => None,
    }
}

pub unsafe fn get_f64s<'a>(env: napi_env, v: napi_value) -> Option<&'a mut [f64]> {
    match get_typed(env, v)? {
        (NAPI_FLOAT64_ARRAY, len, p) => {
            Some(if len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(p as *mut f64, len) })
        }
        _ => None,
    }
}

pub unsafe fn get_external(env: napi_env, v: napi_value) -> Option<*mut c_void> {
    let mut r = ptr::null_mut();
    (!v.is_null() && napi_get_value_external(env, v, &mut r) == NAPI_OK && !r.is_null()).then_some(r)
}

pub unsafe fn int(env: napi_env, v: i32) -> napi_value {
    let mut r = ptr::null_mut();
    napi_create_int32(env, v, &mut r);
    r
}

pub unsafe fn uint(env: napi_env, v: u32) -> napi_value {
    let mut r = ptr::null_mut();
    napi_create_uint32(env, v, &mut r);
    r
}

pub unsafe fn boolean(env: napi_env, v: bool) -> napi_value {
    let mut r = ptr::null_mut();
    napi_get_boolean(env, v, &mut r);
    r
}

pub unsafe fn string(env: napi_env, s: &str) -> napi_value {
    let mut r = ptr::null_mut();
    napi_create_string_utf8(env, s.as_ptr() as *const c_char, s.len(), &mut r);
    r
}

pub unsafe fn undefined(env: napi_env) -> napi_value {
    let mut r = ptr::null_mut();
    napi_get_undefined(env, &mut r);
    r
}

pub unsafe fn export(env: napi_env, exports: napi_value, name: &str, cb: napi_callback) {
    let mut f = ptr::null_mut();
    napi_create_function(env, name.as_ptr() as *const c_char, name.len(), cb, ptr::null_mut(), &mut f);
    let cname = std::ffi::CString::new(name).unwrap();
    napi_set_named_property(env, exports, cname.as_ptr(), f);
}
