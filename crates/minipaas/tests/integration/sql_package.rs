//! The package's own SQL tests (`*_test.sql`), run the way Strata runs them: the test functions are created in
//! one transaction that is rolled back at the end, and each test runs in its own savepoint after the `*_before`
//! functions of its file.

use crate::support;

#[tokio::test]
async fn sql_tests_pass() {
    let (_db, client) = support::fresh_db().await;
    client.batch_execute("BEGIN").await.expect("begin");
    let mut plan = Vec::new();
    for file in support::test_files() {
        let text = std::fs::read_to_string(&file).expect("read test file");
        client
            .batch_execute(&text)
            .await
            .unwrap_or_else(|e| panic!("{} does not load: {e:?}", file.display()));
        let functions = support::defined_functions(&text);
        let befores: Vec<String> = functions
            .iter()
            .filter(|f| f.ends_with("_before"))
            .cloned()
            .collect();
        for test in functions.iter().filter(|f| f.ends_with("_test")) {
            plan.push((test.clone(), befores.clone()));
        }
    }
    assert!(
        plan.len() >= 45,
        "expected the whole suite, found {} tests",
        plan.len()
    );

    let mut failures = Vec::new();
    for (test, befores) in &plan {
        client
            .batch_execute("SAVEPOINT t")
            .await
            .expect("savepoint");
        let mut script = String::new();
        for before in befores {
            script.push_str(&format!("SELECT minipaas.{before}();\n"));
        }
        script.push_str(&format!("SELECT minipaas.{test}();"));
        if let Err(e) = client.batch_execute(&script).await {
            let message = e
                .as_db_error()
                .map(|db| format!("{} ({})", db.message(), db.where_().unwrap_or("")))
                .unwrap_or_else(|| e.to_string());
            failures.push(format!("{test}: {message}"));
        }
        client
            .batch_execute("ROLLBACK TO SAVEPOINT t")
            .await
            .expect("rollback to savepoint");
    }
    client.batch_execute("ROLLBACK").await.expect("rollback");
    assert!(
        failures.is_empty(),
        "{} of {} SQL tests failed:\n{}",
        failures.len(),
        plan.len(),
        failures.join("\n")
    );
}

/// Every migration rolls back cleanly with its down part, in reverse order, once the managed code is gone, and
/// nothing of the package is left: not even its schema.
#[tokio::test]
async fn migrations_roll_back() {
    let (_db, client) = support::fresh_db().await;
    client
        .batch_execute(
            "DO $$ DECLARE f regprocedure; BEGIN
                 FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                           WHERE p.pronamespace = 'minipaas'::regnamespace LOOP
                     EXECUTE 'DROP FUNCTION ' || f;
                 END LOOP;
             END $$",
        )
        .await
        .expect("drop managed code");
    for migration in support::migrations().iter().rev() {
        let text = std::fs::read_to_string(migration).expect("read migration");
        client
            .batch_execute(support::down_part(&text))
            .await
            .unwrap_or_else(|e| panic!("down part of {} fails: {e:?}", migration.display()));
    }
    let schema: Option<String> = client
        .query_one("SELECT to_regnamespace('minipaas')::text", &[])
        .await
        .expect("look the schema up")
        .get(0);
    assert_eq!(
        schema, None,
        "the down parts remove every table, type and index, and the schema the first one created"
    );
    // And the up parts apply again on top.
    support::install(&client).await;
}

/// Managed files hold only what a package manager may replace at will: functions and their comments.
#[test]
fn managed_code_is_only_functions() {
    for file in support::MANAGED {
        let text = support::package_file(file);
        for line in text.lines() {
            let upper = line.trim_start().to_ascii_uppercase();
            for forbidden in [
                "CREATE TABLE",
                "CREATE INDEX",
                "CREATE TYPE",
                "GRANT ",
                "DO $",
                "ALTER ",
            ] {
                assert!(
                    !upper.starts_with(forbidden),
                    "{file} must hold only functions and comments, found: {line}"
                );
            }
        }
    }
}
