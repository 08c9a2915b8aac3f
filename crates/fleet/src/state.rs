//! Recording a fleet run: its id, its targets in order, and each target's latest outcome, so `--resume RUN` retries
//! what did not succeed. In a control database (the `strata_fleet` schema, a Strata package deployed before the run)
//! or in a local JSON Lines file (`DIR/RUN.jsonl`: a header line, then one line per change, replayed in order; a
//! line cut short by a crash is ignored).
//!
//! Outcomes are written as they come, in batches (whatever arrived while the previous batch was being written), by
//! a writer that runs beside the deploys. A run killed before an outcome was written leaves that target `running`
//! or `pending`: resuming deploys it again, which is safe (its deploy lock and history make a deploy idempotent).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use include_dir::{Dir, include_dir};
use pgstrata::{Database, Package, Project, Quiet, UpOptions};
use pgstrata_conn::ConnectOptions;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

use crate::error::{Error, Result};
use crate::report::TargetState;

/// The fleet's tables in a control database, as a Strata package.
static CONTROL_PACKAGE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/control");

/// Where a fleet run's outcomes are recorded.
#[derive(Debug, Clone)]
pub enum StateStore {
    /// A control database: the tables of the `strata_fleet` schema, deployed by Strata before each run.
    Control(Box<ConnectOptions>),
    /// A local directory: one JSON Lines file per run, `DIR/RUN.jsonl`.
    Dir(PathBuf),
}

impl StateStore {
    /// Where, for people (no password).
    pub fn describe(&self) -> String {
        match self {
            StateStore::Control(o) => format!("control database {}", o.redacted()),
            StateStore::Dir(d) => format!("state directory {}", d.display()),
        }
    }
}

/// A new run id: UTC date and time, and four random hex digits (`20261207-101512-3f2a`).
pub fn new_run_id() -> String {
    format!(
        "{}-{:04x}",
        Utc::now().format("%Y%m%d-%H%M%S"),
        rand::random::<u16>()
    )
}

/// A run as recorded when it starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunHeader {
    pub run: String,
    pub command: String,
    pub source: String,
    pub packages: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub strata_version: String,
    /// Every target of the run, in its order (canaries first).
    pub targets: Vec<String>,
}

/// A run as recorded so far: its targets in order, the latest state of each, and its attempts.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub targets: Vec<String>,
    pub states: HashMap<String, TargetState>,
    pub attempts: u32,
    pub source: String,
}

/// A target's new state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Update {
    pub target: String,
    pub state: TargetState,
    pub attempt: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
    pub migrations: Option<i32>,
    pub error: Option<String>,
}

/// A line of a state file after the header.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Update(Update),
    Attempt {
        attempt: u32,
        at: DateTime<Utc>,
    },
    Finished {
        finished: DateTime<Utc>,
        attempt: u32,
    },
}

/// An open store for one run.
pub(crate) enum Recorder {
    Control { db: Database, run: String },
    File { file: std::fs::File, path: PathBuf },
}

impl Recorder {
    /// Start recording a new run.
    pub async fn begin(store: &StateStore, header: &RunHeader) -> Result<Recorder> {
        match store {
            StateStore::Control(options) => {
                let db = open_control(options).await?;
                let positions: Vec<i32> = (1..=header.targets.len())
                    .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
                    .collect();
                db.client()
                    .query_typed(
                        "WITH r AS (
                           INSERT INTO strata_fleet.run (id, command, source, packages, started_at, os_user,
                                                         strata_version)
                           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id)
                         INSERT INTO strata_fleet.target (run_id, target, position)
                         SELECT r.id, t.target, t.position FROM r, unnest($8::text[], $9::int4[]) AS t(target, position)",
                        &[
                            (&header.run, Type::TEXT),
                            (&header.command, Type::TEXT),
                            (&header.source, Type::TEXT),
                            (&header.packages, Type::TEXT_ARRAY),
                            (&header.started_at, Type::TIMESTAMPTZ),
                            (&whoami::username(), Type::TEXT),
                            (&header.strata_version, Type::TEXT),
                            (&header.targets, Type::TEXT_ARRAY),
                            (&positions, Type::INT4_ARRAY),
                        ],
                    )
                    .await
                    .map_err(Error::db("recording the fleet run in strata_fleet.run"))?;
                Ok(Recorder::Control {
                    db,
                    run: header.run.clone(),
                })
            }
            StateStore::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| Error::State {
                    context: "cannot create the state directory",
                    path: dir.clone(),
                    source,
                })?;
                let path = dir.join(format!("{}.jsonl", header.run));
                let file = std::fs::OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| Error::State {
                        context: "cannot create the state file",
                        path: path.clone(),
                        source,
                    })?;
                let mut r = Recorder::File { file, path };
                r.append(&[serde_json::to_value(header).unwrap_or_default()])?;
                Ok(r)
            }
        }
    }

    /// Open a recorded run for another attempt: what it recorded, with the attempt counted.
    pub async fn resume(store: &StateStore, run: &str) -> Result<(Recorder, Recorded)> {
        match store {
            StateStore::Control(options) => {
                let db = open_control(options).await?;
                let row = db
                    .client()
                    .query_typed_opt(
                        "UPDATE strata_fleet.run SET attempts = attempts + 1, finished_at = NULL WHERE id = $1
                         RETURNING attempts, source",
                        &[(&run, Type::TEXT)],
                    )
                    .await
                    .map_err(Error::db("reading strata_fleet.run"))?;
                let Some(row) = row else {
                    return Err(Error::UnknownRun {
                        run: run.to_string(),
                        place: format!("in {}", options.redacted()),
                    });
                };
                let attempts: i32 = row.get(0);
                let rows = db
                    .client()
                    .query_typed(
                        "SELECT target, state FROM strata_fleet.target WHERE run_id = $1 ORDER BY position",
                        &[(&run, Type::TEXT)],
                    )
                    .await
                    .map_err(Error::db("reading strata_fleet.target"))?;
                let mut recorded = Recorded {
                    targets: Vec::with_capacity(rows.len()),
                    states: HashMap::with_capacity(rows.len()),
                    attempts: u32::try_from(attempts).unwrap_or(1),
                    source: row.get(1),
                };
                for r in rows {
                    let name: String = r.get(0);
                    let state = TargetState::parse(r.get(1)).unwrap_or(TargetState::Pending);
                    recorded.states.insert(name.clone(), state);
                    recorded.targets.push(name);
                }
                Ok((
                    Recorder::Control {
                        db,
                        run: run.to_string(),
                    },
                    recorded,
                ))
            }
            StateStore::Dir(dir) => {
                let path = dir.join(format!("{run}.jsonl"));
                let (recorded, cut) = read_file(&path, run)?;
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|source| Error::State {
                        context: "cannot open the state file",
                        path: path.clone(),
                        source,
                    })?;
                if cut {
                    // End the line a crash cut short, so the next one stands on its own.
                    file.write_all(b"\n").map_err(|source| Error::State {
                        context: "cannot write the state file",
                        path: path.clone(),
                        source,
                    })?;
                }
                let mut r = Recorder::File { file, path };
                r.append(&[serde_json::to_value(Line::Attempt {
                    attempt: recorded.attempts,
                    at: Utc::now(),
                })
                .unwrap_or_default()])?;
                Ok((r, recorded))
            }
        }
    }

    /// Record target updates (in order: for one target, the last one wins).
    pub async fn write(&mut self, updates: &[Update]) -> Result<()> {
        match self {
            Recorder::Control { db, run } => {
                // One row per target (the last update), keeping the start time of an earlier one.
                let mut last: Vec<Update> = Vec::new();
                for u in updates {
                    match last.iter_mut().find(|l| l.target == u.target) {
                        Some(l) => {
                            let started = l.started_at.or(u.started_at);
                            *l = u.clone();
                            l.started_at = u.started_at.or(started);
                        }
                        None => last.push(u.clone()),
                    }
                }
                let target: Vec<&str> = last.iter().map(|u| u.target.as_str()).collect();
                let state: Vec<&str> = last.iter().map(|u| u.state.as_str()).collect();
                let attempt: Vec<i32> = last
                    .iter()
                    .map(|u| i32::try_from(u.attempt).unwrap_or(i32::MAX))
                    .collect();
                let started: Vec<Option<DateTime<Utc>>> =
                    last.iter().map(|u| u.started_at).collect();
                let finished: Vec<Option<DateTime<Utc>>> =
                    last.iter().map(|u| u.finished_at).collect();
                let duration: Vec<Option<f64>> = last.iter().map(|u| u.duration_ms).collect();
                let migrations: Vec<Option<i32>> = last.iter().map(|u| u.migrations).collect();
                let error: Vec<Option<&str>> = last.iter().map(|u| u.error.as_deref()).collect();
                db.client()
                    .query_typed(
                        "UPDATE strata_fleet.target t
                            SET state = u.state, attempt = u.attempt,
                                started_at = coalesce(u.started_at, t.started_at), finished_at = u.finished_at,
                                duration_ms = u.duration_ms, migrations = u.migrations, error = u.error
                           FROM unnest($2::text[], $3::text[], $4::int4[], $5::timestamptz[], $6::timestamptz[],
                                       $7::float8[], $8::int4[], $9::text[])
                                AS u(target, state, attempt, started_at, finished_at, duration_ms, migrations, error)
                          WHERE t.run_id = $1 AND t.target = u.target",
                        &[
                            (run, Type::TEXT),
                            (&target, Type::TEXT_ARRAY),
                            (&state, Type::TEXT_ARRAY),
                            (&attempt, Type::INT4_ARRAY),
                            (&started, Type::TIMESTAMPTZ_ARRAY),
                            (&finished, Type::TIMESTAMPTZ_ARRAY),
                            (&duration, Type::FLOAT8_ARRAY),
                            (&migrations, Type::INT4_ARRAY),
                            (&error, Type::TEXT_ARRAY),
                        ],
                    )
                    .await
                    .map_err(Error::db("recording outcomes in strata_fleet.target"))?;
                Ok(())
            }
            Recorder::File { .. } => {
                let lines: Vec<serde_json::Value> = updates
                    .iter()
                    .map(|u| serde_json::to_value(u).unwrap_or_default())
                    .collect();
                self.append(&lines)
            }
        }
    }

    /// The attempt is over.
    pub async fn finish(&mut self, attempt: u32) -> Result<()> {
        match self {
            Recorder::Control { db, run } => {
                db.client()
                    .query_typed(
                        "UPDATE strata_fleet.run SET finished_at = clock_timestamp() WHERE id = $1",
                        &[(run, Type::TEXT)],
                    )
                    .await
                    .map_err(Error::db("recording the end of the fleet run"))?;
                Ok(())
            }
            Recorder::File { .. } => {
                let line = serde_json::to_value(Line::Finished {
                    finished: Utc::now(),
                    attempt,
                })
                .unwrap_or_default();
                self.append(&[line])?;
                if let Recorder::File { file, path } = self {
                    file.sync_all().map_err(|source| Error::State {
                        context: "cannot write the state file",
                        path: path.clone(),
                        source,
                    })?;
                }
                Ok(())
            }
        }
    }

    /// Append JSON lines to the state file, in one write (so a kill never leaves half of a batch).
    fn append(&mut self, lines: &[serde_json::Value]) -> Result<()> {
        let Recorder::File { file, path } = self else {
            return Ok(());
        };
        let mut text = String::new();
        for l in lines {
            text.push_str(&l.to_string());
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .map_err(|source| Error::State {
                context: "cannot write the state file",
                path: path.clone(),
                source,
            })
    }
}

/// Connect to the control database and bring its `strata_fleet` tables up to date.
async fn open_control(options: &ConnectOptions) -> Result<Database> {
    let mut db = Database::connect(options).await?;
    let project = Project::new(vec![Package::embedded(&CONTROL_PACKAGE)?])?;
    let opts = UpOptions {
        tests: pgstrata::TestMode::Skip,
        ..UpOptions::default()
    };
    pgstrata::up(&mut db, &project, &opts, &mut Quiet).await?;
    Ok(db)
}

/// Replay a state file; also says whether its last line was cut short (no final newline).
fn read_file(path: &std::path::Path, run: &str) -> Result<(Recorded, bool)> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::UnknownRun {
                run: run.to_string(),
                place: format!("in {}", path.parent().unwrap_or(path).display()),
            });
        }
        Err(source) => {
            return Err(Error::State {
                context: "cannot read the state file",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::BufReader::new(file), &mut text).map_err(
        |source| Error::State {
            context: "cannot read the state file",
            path: path.to_path_buf(),
            source,
        },
    )?;
    let cut = !text.is_empty() && !text.ends_with('\n');
    let mut lines = text.lines();
    let header: RunHeader = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| Error::UnknownRun {
            run: run.to_string(),
            place: format!("(the state file {} has no readable header)", path.display()),
        })?;
    let mut recorded = Recorded {
        states: header
            .targets
            .iter()
            .map(|t| (t.clone(), TargetState::Pending))
            .collect(),
        targets: header.targets,
        attempts: 1,
        source: header.source,
    };
    for line in lines {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Update(u)) => {
                if let Some(s) = recorded.states.get_mut(&u.target) {
                    *s = u.state;
                }
            }
            Ok(Line::Attempt { attempt, .. } | Line::Finished { attempt, .. }) => {
                recorded.attempts = recorded.attempts.max(attempt);
            }
            // A line cut short by a crash: what it said is lost, and that target is deployed again.
            Err(e) => tracing::warn!("{}: skipping an unreadable line: {e}", path.display()),
        }
    }
    recorded.attempts += 1;
    Ok((recorded, cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(target: &str, state: TargetState) -> Update {
        Update {
            target: target.into(),
            state,
            attempt: 1,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            migrations: None,
            error: None,
        }
    }

    #[tokio::test]
    async fn a_state_file_replays_and_survives_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::Dir(dir.path().to_path_buf());
        let header = RunHeader {
            run: "r1".into(),
            command: "up".into(),
            source: "--targets t.toml".into(),
            packages: vec!["app".into()],
            started_at: Utc::now(),
            strata_version: "0".into(),
            targets: vec!["a".into(), "b".into(), "c".into()],
        };
        let mut r = Recorder::begin(&store, &header).await.unwrap();
        r.write(&[
            update("a", TargetState::Running),
            update("b", TargetState::Running),
            update("a", TargetState::Succeeded),
            update("b", TargetState::Failed),
        ])
        .await
        .unwrap();
        drop(r);
        // A kill in the middle of a line.
        let path = dir.path().join("r1.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"target\":\"b\",\"sta").unwrap();
        let (mut r, rec) = Recorder::resume(&store, "r1").await.unwrap();
        assert_eq!(rec.targets, ["a", "b", "c"]);
        assert_eq!(rec.states["a"], TargetState::Succeeded);
        assert_eq!(rec.states["b"], TargetState::Failed);
        assert_eq!(rec.states["c"], TargetState::Pending);
        assert_eq!(rec.attempts, 2);
        r.finish(2).await.unwrap();
        let (_, rec) = Recorder::resume(&store, "r1").await.unwrap();
        assert_eq!(rec.attempts, 3);
        assert!(matches!(
            Recorder::resume(&store, "nope").await,
            Err(Error::UnknownRun { .. })
        ));
    }
}
