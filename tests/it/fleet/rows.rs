//! Issue 23: shipped rows that keep shipping (a ship cursor that SQLite's
//! reused rowids or a fresh volume cannot strand), one live replica per
//! name, and retention in PostgreSQL too.

use super::*;

async fn shipped(pg: &Pg, replica: &str) -> i64 {
    pg.client()
        .await
        .query_one(
            "SELECT COUNT(*) FROM understudy.exchanges WHERE replica = $1",
            &[&replica],
        )
        .await
        .unwrap()
        .get(0)
}

async fn requests(r: &Running, n: usize, tag: &str) {
    for i in 0..n {
        let (status, _, _) = get(&format!("http://{}/{tag}{i}", r.addr)).await;
        assert_eq!(status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_keep_shipping_after_the_table_empties_and_on_a_fresh_volume() {
    let Some(pg) = pg::start("fleet_rows_cursor").await else {
        return;
    };
    let incumbent = upstream().spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::new(
        &pg,
        &dir,
        incumbent.url(),
        incumbent.url(),
        "{ default = 0.0 }",
    );
    let a = replica(&spec, "a", "ship_rows = true").await;
    all_connected(&[&a]).await;
    requests(&a, 5, "first").await;
    let db = a.proxy.store.path().to_path_buf();
    a.stop().await;
    assert_eq!(shipped(&pg, "a").await, 5);
    // Retention (or max_bytes) emptied the table: SQLite would start its
    // rowids over, below the cursor.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DELETE FROM exchanges")
        .unwrap();
    let a = replica(&spec, "a", "ship_rows = true").await;
    all_connected(&[&a]).await;
    requests(&a, 3, "second").await;
    a.stop().await;
    assert_eq!(shipped(&pg, "a").await, 8, "rows after an empty table ship");
    // A fresh volume under the same name.
    let fresh = tempfile::tempdir().unwrap();
    let spec = Spec::new(
        &pg,
        &fresh,
        incumbent.url(),
        incumbent.url(),
        "{ default = 0.0 }",
    );
    let a = replica(&spec, "a", "ship_rows = true").await;
    all_connected(&[&a]).await;
    requests(&a, 2, "third").await;
    a.stop().await;
    assert_eq!(shipped(&pg, "a").await, 10, "a fresh file's rows ship");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_live_replica_with_the_same_name_stays_out_of_the_fleet() {
    let Some(pg) = pg::start("fleet_same_name").await else {
        return;
    };
    let incumbent = upstream().spawn().await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Spec::new(
        &pg,
        &d1,
        incumbent.url(),
        incumbent.url(),
        "{ default = 0.0 }",
    );
    let second = Spec::new(
        &pg,
        &d2,
        incumbent.url(),
        incumbent.url(),
        "{ default = 0.0 }",
    );
    let a = replica(&first, "a", "ship_rows = true").await;
    all_connected(&[&a]).await;
    let twin = replica(&second, "a", "ship_rows = true").await;
    requests(&twin, 3, "twin").await;
    // It serves (the client's path is not the fleet's), but never joins (its
    // rows still ship: exchange ids are unique, nothing is counted twice).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ready = readyz(&twin).await;
    assert!(ready.contains("fleet: disconnected"), "{ready}");
    assert!(readyz(&a).await.contains("fleet: connected"));
    // Once the first is gone, the name is free.
    a.stop().await;
    all_connected(&[&twin]).await;
    twin.stop().await;
    assert_eq!(shipped(&pg, "a").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_rows_past_retention_are_deleted_from_postgresql() {
    let Some(pg) = pg::start("fleet_rows_retention").await else {
        return;
    };
    let incumbent = upstream().spawn().await;
    let dir = tempfile::tempdir().unwrap();
    // Migrate, then put an old row of `a` and one of another replica there.
    drop(
        understudy::fleet::connect_once(&pg.url, None)
            .await
            .unwrap(),
    );
    let old = understudy::store::now_ms() - 2 * 3_600_000;
    pg.client()
        .await
        .execute(
            "INSERT INTO understudy.exchanges (id, replica, ts, route, segment, served_by, method,
                 path, verdict, diff, fallback)
             VALUES ('old-a', 'a', $1, 'r', 'default', 'incumbent', 'GET', '/', 'match', '[]', false),
                    ('old-b', 'b', $1, 'r', 'default', 'incumbent', 'GET', '/', 'match', '[]', false)",
            &[&old],
        )
        .await
        .unwrap();
    let routes = route("r", "/", &incumbent.url(), &incumbent.url(), "");
    let text = fleet_config(&pg.url, dir.path(), "a", &routes, "ship_rows = true")
        .replace("[store]\n", "[store]\nretention = \"1h\"\n");
    let config = understudy::config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let a = understudy::app::start(config).await.unwrap();
    all_connected(&[&a]).await;
    let client = pg.client().await;
    let ids = || async {
        client
            .query("SELECT id FROM understudy.exchanges ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + PATIENCE;
    while ids().await.contains(&"old-a".to_string()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids().await, ["old-b"], "a prunes its own rows, not b's");
    a.stop().await;
}
