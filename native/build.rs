// The AEAD backend: the system libsodium (Debian libsodium-dev) when the build finds it, else OpenSSL's EVP
// AEADs, which resolve at load time from the node executable (it exports them). PILOT_NATIVE_AEAD=evp forces
// the OpenSSL backend (tests build both); native/build.mjs says once which one it built.
fn has_sodium() -> Option<Vec<String>> {
    if let Ok(out) = std::process::Command::new("pkg-config").args(["--libs-only-L", "libsodium"]).output() {
        if out.status.success() {
            return Some(String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|f| f.strip_prefix("-L").map(String::from)).collect());
        }
    }
    let libs = ["/usr/lib/x86_64-linux-gnu/libsodium.so", "/usr/lib/libsodium.so", "/usr/local/lib/libsodium.so"];
    libs.iter().find(|p| std::path::Path::new(p).exists()).map(|p| vec![std::path::Path::new(p).parent().unwrap().display().to_string()])
}

fn main() {
    println!("cargo:rustc-check-cfg=cfg(pilot_sodium)");
    println!("cargo:rerun-if-env-changed=PILOT_NATIVE_AEAD");
    let forced_evp = std::env::var("PILOT_NATIVE_AEAD").map(|v| v == "evp").unwrap_or(false);
    match if forced_evp { None } else { has_sodium() } {
        Some(dirs) => {
            for dir in dirs {
                println!("cargo:rustc-link-search=native={dir}");
            }
            println!("cargo:rustc-link-lib=dylib=sodium");
            println!("cargo:rustc-cfg=pilot_sodium");
        }
        None => {}
    }
    // N-API functions (and, without libsodium, OpenSSL's EVP functions) live in the node executable; a cdylib
    // may leave them undefined on Linux.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--unresolved-symbols=ignore-all");
    println!("cargo:rerun-if-changed=build.rs");
    // Installing (or removing) libsodium-dev after a build must change the backend at the next build.
    for lib in ["/usr/lib/x86_64-linux-gnu/libsodium.so", "/usr/lib/libsodium.so", "/usr/local/lib/libsodium.so"] {
        println!("cargo:rerun-if-changed={lib}");
    }
}
