//! Replays every file of each target's corpus through the target body: the short smoke
//! run CI does on stable (real fuzzing needs `cargo +nightly fuzz run <target>`).

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        body(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus for {target}");
    println!("{target}: replayed {count} inputs");
}

#[test]
fn path_normalize_corpus() {
    replay("path_normalize", gw_fuzz::path_normalize);
}
