// Link the system libsodium (Debian libsodium-dev). native/build.mjs checks it exists before cargo runs.
fn main() {
    if let Ok(out) = std::process::Command::new("pkg-config").args(["--libs-only-L", "libsodium"]).output() {
        for flag in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Some(dir) = flag.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            }
        }
    }
    println!("cargo:rustc-link-lib=dylib=sodium");
    // N-API functions live in the node executable; a cdylib may leave them undefined on Linux.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--unresolved-symbols=ignore-all");
    println!("cargo:rerun-if-changed=build.rs");
}
