//! The Dockerfile (no Docker engine here, so it is read, not built): every
//! workspace member is copied into the build stage, the image runs as a
//! non-root user, its exposed ports and health check agree with the
//! proxy.toml it ships, and those listeners are reachable from outside.

use std::path::Path;

fn root(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn the_dockerfile_builds_the_workspace_and_agrees_with_the_config_it_ships() {
    let docker = root("Dockerfile");
    let lines: Vec<&str> = docker.lines().map(str::trim).collect();
    let stages: Vec<usize> = (lines.iter().enumerate())
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(stages.len(), 2, "a build and a runtime stage");
    let (build, runtime) = (&lines[stages[0]..stages[1]], &lines[stages[1]..]);

    // Every workspace member's directory reaches the build stage.
    let manifest: toml::Value = toml::from_str(&root("Cargo.toml")).unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    for m in members
        .iter()
        .filter_map(|m| m.as_str())
        .filter(|m| *m != ".")
    {
        let top = m.split('/').next().unwrap();
        assert!(
            build.iter().any(|l| l.starts_with("COPY ")
                && (l.contains(&format!(" {m} ")) || l.contains(&format!(" {top} ")))),
            "workspace member {m} is not copied: {build:?}"
        );
    }
    // The binary to deploy: the `dist` profile, and that binary copied.
    assert!(
        build
            .iter()
            .any(|l| l.contains("cargo build --profile dist --locked"))
    );
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY --from=build /src/target/dist/understudy ")),
        "{runtime:?}"
    );
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(manifest.contains("[profile.dist]"));

    // Not root.
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    assert!(user != "root" && user != "0", "{user}");
    assert!(runtime.iter().any(|l| l.contains(&format!("--uid {user}"))));

    // The config the CMD names is the one copied, and its ports are exposed.
    let cmd = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("CMD "))
        .unwrap();
    let cmd: Vec<String> = serde_json::from_str(cmd).unwrap();
    let cfg_path = &cmd[cmd.iter().position(|a| a == "-c").unwrap() + 1];
    let copied = runtime
        .iter()
        .find_map(|l| {
            let rest = l.strip_prefix("COPY ")?;
            let (src, dst) = rest.split_once(' ')?;
            (dst == cfg_path).then_some(src)
        })
        .expect("the config the CMD names is copied");
    let config = understudy::config::parse(&root(copied)).unwrap();
    let exposed: Vec<u16> = runtime
        .iter()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(
        exposed,
        [config.listen.addr.port(), config.admin.addr.port()]
    );
    assert!(
        !config.listen.addr.ip().is_loopback() && !config.admin.addr.ip().is_loopback(),
        "published ports must reach the listeners"
    );
    // The health check asks the admin listener the image configures.
    let health = runtime
        .iter()
        .find(|l| l.starts_with("CMD [\"/usr/local/bin/understudy\", \"status\""));
    let health = health.expect("a HEALTHCHECK running `understudy status`");
    assert!(
        health.contains(&format!("127.0.0.1:{}", config.admin.addr.port())),
        "{health}"
    );
    // The getting-started page's docker run mounts over the same path.
    assert!(root("docs/src/getting-started.md").contains(&format!(":{cfg_path}")));
}
