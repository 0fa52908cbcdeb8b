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

#[test]
fn bearer_header_corpus() {
    replay("bearer_header", gw_fuzz::bearer_header);
}

#[test]
fn signature_headers_corpus() {
    replay("signature_headers", gw_fuzz::signature_headers);
}

#[test]
fn callback_body_corpus() {
    replay("callback_body", gw_fuzz::callback_body);
}

/// The seeds reach the accepting paths, so fuzzing starts from both sides of each check.
#[test]
fn seeds_cover_acceptance_and_rejection() {
    let seed = |target: &str, name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("corpus")
                .join(target)
                .join(name),
        )
        .unwrap()
    };
    assert_eq!(
        gw_fuzz::bearer_status(&seed("bearer_header", "seed_valid")),
        Some(200)
    );
    assert_eq!(
        gw_fuzz::bearer_status(&seed("bearer_header", "seed_expired")),
        Some(401)
    );
    assert_eq!(
        gw_fuzz::signature_status(&seed("signature_headers", "seed_valid")),
        Some(200)
    );
    assert_eq!(
        gw_fuzz::signature_status(&seed("signature_headers", "seed_stale")),
        Some(401)
    );
    let table = callback_fsm::TransitionTable::job_lifecycle();
    assert!(
        callback_fsm::CallbackEvent::from_json(&seed("callback_body", "seed_full"), &table).is_ok()
    );
}
