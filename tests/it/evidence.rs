//! Issue 23: pooled evidence that is never skipped or lost silently, on a
//! real PostgreSQL: rows committed out of id order by concurrent replicas
//! are all read, and rows whose insert timed out go back to the buffer.

use crate::support::*;
use std::time::{Duration, Instant};
use understudy::compare::Verdict;
use understudy::fleet::evidence::{Buffer, Row, sql};
use understudy::rollout::guard::Sample;

fn row(seq: i64, matches: u64) -> Row {
    Row {
        route: "r".into(),
        segment: "smb".into(),
        second: understudy::fleet::evidence::unix_seconds(),
        slice: (seq % 5) as i16,
        seq,
        matches,
        ..Row::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_committed_out_of_id_order_is_read_all_the_same() {
    let Some(pg) = pg::start("evidence_order").await else {
        return;
    };
    let mut b = understudy::fleet::connect_once(&pg.url, None)
        .await
        .unwrap();
    let a = pg.client().await;
    a.batch_execute(
        "INSERT INTO understudy.replicas (replica, started_ms, seen_ms) VALUES ('a', 0, 0), ('b', 0, 0)",
    )
    .await
    .unwrap();
    let mut cursor = sql::Cursor::default();
    assert!(cursor.read(&b, 600).await.unwrap().is_empty());
    // Replica a's transaction takes its id first and commits last.
    a.batch_execute("BEGIN").await.unwrap();
    a.execute(
        "INSERT INTO understudy.evidence (replica, route, segment, second, slice, matches,
             mismatches, candidate_errors, safety_events, safety_only, seq)
         VALUES ('a', 'r', 'smb', $1, 0, 7, 0, 0, 0, 0, 1)",
        &[&understudy::fleet::evidence::unix_seconds()],
    )
    .await
    .unwrap();
    sql::insert(&mut b, "b", &[row(1, 3)]).await.unwrap();
    let first = cursor.read(&b, 600).await.unwrap();
    assert_eq!(first.iter().map(|r| r.matches).sum::<u64>(), 3);
    a.batch_execute("COMMIT").await.unwrap();
    // An id cursor stood past a's row now.
    let ids: Vec<(String, i64)> = b
        .query(
            "SELECT replica, id FROM understudy.evidence ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(ids[0].0, "a", "{ids:?}");
    let second = cursor.read(&b, 600).await.unwrap();
    assert_eq!(
        second.iter().map(|r| r.matches).sum::<u64>(),
        7,
        "the row committed behind the id cursor is read"
    );
    assert!(cursor.read(&b, 600).await.unwrap().is_empty(), "read once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_whose_insert_times_out_goes_back_to_the_buffer() {
    let Some(pg) = pg::start("evidence_timeout").await else {
        return;
    };
    let mut client = understudy::fleet::connect_once(&pg.url, None)
        .await
        .unwrap();
    let buffer = Buffer::default();
    let sample = Sample {
        at: Instant::now(),
        verdict: Verdict::Match,
        safety: false,
        incumbent_ms: Some(1.0),
        candidate_ms: Some(1.0),
        incumbent_ttft_ms: None,
        candidate_ttft_ms: None,
        user: None,
        excluded: false,
    };
    for _ in 0..25 {
        buffer.add("r", "smb", &sample);
    }
    // Let the slice close.
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Another session holds the table: the insert cannot finish in time.
    let holder = pg.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE understudy.evidence IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();
    {
        let (lease, dropped) = buffer.lease();
        assert_eq!(dropped, 0);
        assert_eq!(lease.rows().iter().map(|r| r.matches).sum::<u64>(), 25);
        let insert = sql::insert(&mut client, "a", lease.rows());
        let timed_out = tokio::time::timeout(Duration::from_millis(300), insert).await;
        assert!(
            timed_out.is_err(),
            "the insert should have waited on the lock"
        );
        // The step gives up: the lease is dropped uncommitted.
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    drop(client);
    let mut client = understudy::fleet::connect_once(&pg.url, None)
        .await
        .unwrap();
    let (lease, _) = buffer.lease();
    assert_eq!(
        lease.rows().iter().map(|r| r.matches).sum::<u64>(),
        25,
        "the rows came back"
    );
    sql::insert(&mut client, "a", lease.rows()).await.unwrap();
    lease.committed();
    let stored: i64 = client
        .query_one(
            "SELECT COALESCE(SUM(matches), 0)::BIGINT FROM understudy.evidence",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 25);
    assert_eq!(buffer.abandon(), 0, "nothing left once committed");
}
