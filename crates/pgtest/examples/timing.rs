//! Measures the harness: the first `TestDb` (which starts the cluster) and each further one.
//!
//! `cargo run -p pgtest --example timing --release`

use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let started = Instant::now();
    let first = pgtest::TestDb::new().await;
    println!(
        "first TestDb (cluster start + CREATE DATABASE): {:?}",
        started.elapsed()
    );

    let mut created = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        created.push(pgtest::TestDb::new().await);
        println!("further TestDb: {:?}", started.elapsed());
    }

    let started = Instant::now();
    drop(created);
    println!("dropping 10 TestDbs: {:?}", started.elapsed());
    drop(first);
}
