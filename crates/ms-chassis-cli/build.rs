//! Rebuilds the CLI when the embedded template changes: `include_dir!` alone does not tell
//! Cargo which files it read.

fn main() {
    println!("cargo:rerun-if-changed=templates");
}
