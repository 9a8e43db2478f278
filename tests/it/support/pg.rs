//! A private PostgreSQL server per test, from Debian's `postgresql` package:
//! `initdb` once into a template (a few seconds), then per server a copy of
//! it started on a free loopback port with its socket in a temp dir, stopped
//! (and removed) when the handle drops. As root, the server runs as the
//! `postgres` user (PostgreSQL refuses root). A watchdog kills the server if
//! the test process dies first.
//!
//! `UNDERSTUDY_TEST_PG_URL` points the tests at an existing server instead (a
//! fresh database per test; the tests that stop the server need the private
//! one and skip). Without either, [`start`] returns `None` and the test says
//! it skipped — unless `UNDERSTUDY_REQUIRE_PG` is set (`.ci/run` sets it),
//! where a missing PostgreSQL fails the test.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pg {
    pub url: String,
    port: u16,
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    owner: Option<(u32, u32)>,
    bin: Option<PathBuf>,
    /// Extra `postgres -c` settings (TLS).
    settings: Vec<String>,
}

/// A server for this test, or `None` (with a message) when the machine has
/// no PostgreSQL and the run does not require one.
pub async fn start(test: &str) -> Option<Pg> {
    start_with(test, None).await
}

/// A private server that speaks TLS with this certificate and key (PEM).
/// `None` also when only `UNDERSTUDY_TEST_PG_URL` is available.
pub async fn start_tls(test: &str, cert: &str, key: &str) -> Option<Pg> {
    if std::env::var_os("UNDERSTUDY_TEST_PG_URL").is_some() {
        eprintln!("SKIPPED {test}: needs a private PostgreSQL for TLS");
        return None;
    }
    start_with(test, Some((cert, key))).await
}

async fn start_with(test: &str, tls: Option<(&str, &str)>) -> Option<Pg> {
    if let Ok(url) = std::env::var("UNDERSTUDY_TEST_PG_URL") {
        return Some(external(&url, test).await);
    }
    let Some(bin) = bin_dir() else {
        if std::env::var_os("UNDERSTUDY_REQUIRE_PG").is_some() {
            panic!(
                "{test}: PostgreSQL is required (UNDERSTUDY_REQUIRE_PG) but no /usr/lib/postgresql/*/bin/postgres"
            );
        }
        eprintln!(
            "SKIPPED {test}: no PostgreSQL here (apt-get install postgresql, or set UNDERSTUDY_TEST_PG_URL)"
        );
        return None;
    };
    let owner = if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
    {
        Some(postgres_user().expect("a postgres user to run PostgreSQL as (root cannot)"))
    } else {
        None
    };
    let template = template(&bin, owner);
    let dir = tempfile::Builder::new()
        .prefix("pg-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir");
    let data = dir.path().join("data");
    let status = Command::new("cp")
        .args(["-a"])
        .arg(&template)
        .arg(&data)
        .status()
        .expect("cp");
    assert!(status.success(), "copying the PostgreSQL template");
    let mut settings = Vec::new();
    if let Some((cert, key)) = tls {
        let (c, k) = (data.join("server.crt"), data.join("server.key"));
        std::fs::write(&c, cert).expect("cert");
        std::fs::write(&k, key).expect("key");
        std::fs::set_permissions(&k, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        for f in [&c, &k] {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(f, Some(uid), Some(gid)).expect("chown");
            }
        }
        settings = vec![
            "ssl=on".to_string(),
            format!("ssl_cert_file={}", c.display()),
            format!("ssl_key_file={}", k.display()),
        ];
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
    }
    let port = free_port();
    let mut pg = Pg {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable"),
        port,
        dir: Some(dir),
        child: None,
        owner,
        bin: Some(bin),
        settings,
    };
    pg.resume().await;
    Some(pg)
}

impl Pg {
    /// A handle on a URL this harness did not start (nothing to stop).
    pub fn external_url(url: &str) -> Pg {
        Pg {
            url: url.to_string(),
            port: 0,
            dir: None,
            child: None,
            owner: None,
            bin: None,
            settings: Vec::new(),
        }
    }

    /// Whether this server can be stopped and started (a private one).
    pub fn private(&self) -> bool {
        self.dir.is_some()
    }

    /// Stops the server now (a fast shutdown: sessions are cut).
    pub fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: fast shutdown.
            Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status()
                .ok();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts the (stopped) server again on the same port and data.
    pub async fn resume(&mut self) {
        let (Some(dir), Some(bin)) = (&self.dir, &self.bin) else {
            return;
        };
        let data = dir.path().join("data");
        let sock = dir.path().to_path_buf();
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&sock)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=100", "-c", "shared_buffers=16MB"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .env("LC_ALL", "C")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().expect("start postgres");
        watchdog(child.id());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A connection for assertions.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .arg("-QUIT")
                .arg(child.id().to_string())
                .status()
                .ok();
            if !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(50));
                child.kill().ok();
            }
            child.wait().ok();
        }
    }
}

async fn external(url: &str, test: &str) -> Pg {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("UNDERSTUDY_TEST_PG_URL reachable");
    tokio::spawn(conn);
    let db = format!(
        "understudy_{}_{}",
        test.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        std::process::id()
    );
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .ok();
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("create a test database");
    let mut cfg: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    cfg.dbname(&db);
    let host = url
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap_or("127.0.0.1");
    let user = cfg.get_user().unwrap_or("postgres");
    Pg {
        url: format!("postgres://{user}@{host}/{db}?sslmode=disable"),
        port: 0,
        dir: None,
        child: None,
        owner: None,
        bin: None,
        settings: Vec::new(),
    }
}

fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("postgres").exists() && b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres"))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

/// The initdb'd template, made once per machine (under a lock file).
fn template(bin: &Path, owner: Option<(u32, u32)>) -> PathBuf {
    let tag = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|v| v.to_string_lossy().to_string())
        .unwrap_or_default();
    let uid = owner.map_or(0, |o| o.0);
    let base = PathBuf::from(format!("/dev/shm/understudy-pg-template-{tag}-u{uid}"));
    let data = base.join("data");
    if data.join("PG_VERSION").exists() {
        return data;
    }
    std::fs::create_dir_all(&base).expect("template dir");
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&base, Some(uid), Some(gid)).expect("chown");
    }
    // One initdb at a time: the loser of the lock waits for the winner.
    let lock = base.join("lock");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) if data.join("PG_VERSION").exists() => {
                std::fs::remove_file(&lock).ok();
                return data;
            }
            Ok(_) => break,
            Err(_) if data.join("PG_VERSION").exists() => return data,
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "waiting for the PostgreSQL template"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let building = base.join("building");
    std::fs::remove_dir_all(&building).ok();
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(&building)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
    if ok {
        std::fs::rename(&building, &data).expect("template in place");
    }
    std::fs::remove_file(&lock).ok();
    assert!(ok, "initdb failed");
    data
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kills the server when this process ends, however it ends.
fn watchdog(pg: u32) {
    let me = std::process::id();
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null && kill -0 {pg} 2>/dev/null; do sleep 1; done; kill -9 {pg} 2>/dev/null"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok();
}

/// A loopback TCP relay in front of a PostgreSQL server, so that one replica
/// can be cut off (a network partition) while others stay connected. Each
/// connection is copied both ways until [`Relay::cut`], which closes every
/// open one and refuses new ones until [`Relay::heal`].
pub struct Relay {
    /// The server's URL with the relay's port.
    pub url: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// A relay to the server `pg` runs on loopback.
    pub async fn start(pg: &Pg) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = format!("127.0.0.1:{}", pg.port);
        let url = pg
            .url
            .replace(&format!(":{}/", pg.port), &format!(":{port}/"));
        assert_ne!(url, pg.url, "the relay needs the server's port in its URL");
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, o) = (cut.clone(), open.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::Acquire) {
                    continue; // dropped: refused
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        // Either side closing (or a cut) ends the copy.
                        tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                            .await
                            .ok();
                    }
                });
                o.lock().unwrap().push(task.abort_handle());
            }
        });
        Relay {
            url,
            cut,
            open,
            accept,
        }
    }

    /// Cuts every connection through the relay and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::Release);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
