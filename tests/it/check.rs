//! `understudy check` on the real binary: exit codes and located messages.

use std::process::Command;

fn check(path: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["check", "-c", path])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_config_passes() {
    let (code, stdout, _) = check(concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml"));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("ok"));
}

#[test]
fn broken_configs_exit_1_with_line_and_column() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/configs");
    let cases = [
        ("bad-syntax.toml", ":"),
        ("bad-weight.toml", "weight 150 is outside 0..=100"),
        ("bad-duplicate-route.toml", "duplicate route name"),
        ("bad-url.toml", "bad URL"),
    ];
    for (file, fragment) in cases {
        let (code, _, stderr) = check(&format!("{dir}/{file}"));
        assert_eq!(code, Some(1), "{file}: {stderr}");
        assert!(stderr.contains(fragment), "{file}: {stderr}");
        let located = stderr.contains(&format!("{file}:"))
            && stderr
                .split(&format!("{file}:"))
                .nth(1)
                .is_some_and(|rest| {
                    let mut parts = rest.splitn(3, ':');
                    parts.next().is_some_and(|l| l.parse::<u32>().is_ok())
                        && parts.next().is_some_and(|c| c.parse::<u32>().is_ok())
                });
        assert!(located, "{file}: no line:col in {stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn a_missing_file_is_a_user_error() {
    let (code, _, stderr) = check("/nonexistent/proxy.toml");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot read /nonexistent/proxy.toml"));
}

/// Issue 27: `check` stopped at the first parse error (a misspelt `tolerence`);
/// the other problems appeared one fix later. Every problem comes in one run,
/// each at its `file:line:col`, a misspelt key with the nearest known one.
#[test]
fn every_problem_is_reported_in_one_run_issue_27() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/configs");
    let (code, _, stderr) = check(&format!("{dir}/bad-every-kind.toml"));
    assert_eq!(code, Some(1), "{stderr}");
    let expected = [
        ("bad-every-kind.toml:9:1:", "unknown key `max_body_byte`"),
        ("bad-every-kind.toml:9:1:", "did you mean `max_body_bytes`?"),
        ("bad-every-kind.toml:15:13:", "scheme must be http or https"),
        ("bad-every-kind.toml:17:28:", "unknown key `tolerence`"),
        ("bad-every-kind.toml:17:28:", "did you mean `tolerance`?"),
        (
            "bad-every-kind.toml:18:54:",
            "weight 150 is outside 0..=100",
        ),
        (
            "bad-every-kind.toml:19:25:",
            "invalid type: string \"lots\"",
        ),
    ];
    for (location, fragment) in expected {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("/{location}")) && l.contains(fragment)),
            "no line {location} ... {fragment} in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("routes[pricing].compare.tolerence"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}
