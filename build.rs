//! Build script: rebuild when embedded folders change. `include_dir!` cannot tell Cargo which
//! files it read (that needs nightly), so without this an edited lab or image context would
//! leave a stale copy in the binary.

fn main() {
    for dir in ["labs", "images", "node-image", "book/src"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
