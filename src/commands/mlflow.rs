//! `food101 mlflow sync`: deliver the runs recorded while no server was reachable.

use std::path::PathBuf;

use anyhow::{Context, Result};
use food101::track::{Journal, MlflowClient};

#[derive(clap::Subcommand)]
pub enum MlflowCommand {
    /// Send the events of runs recorded while no server was reachable (each exactly once).
    Sync {
        /// Tracking server (default: MLFLOW_TRACKING_URI).
        #[arg(long)]
        uri: Option<String>,
        /// Journal folders (default: every one in data-cache/mlflow-journal).
        journals: Vec<PathBuf>,
    },
}

pub fn run(command: MlflowCommand) -> Result<()> {
    let MlflowCommand::Sync { uri, journals } = command;
    let client = match uri {
        Some(uri) => MlflowClient::new(&uri),
        None => MlflowClient::from_env().context("no server: pass --uri or set MLFLOW_TRACKING_URI to an http(s) address")?,
    };
    let journals = if journals.is_empty() {
        let root = food101::track::journal_root();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect()).unwrap_or_default();
        dirs.sort();
        dirs
    } else {
        journals
    };
    let mut failed = 0;
    for dir in &journals {
        if !dir.join("events.jsonl").is_file() {
            failed += 1;
            println!("{}: not a run journal (no events.jsonl): nothing to deliver", dir.display());
            continue;
        }
        let journal = Journal::open(dir)?;
        if journal.events().is_empty() {
            failed += 1;
            println!("{}: no readable event in events.jsonl: nothing to deliver", dir.display());
            continue;
        }
        match food101::track::sync(&journal, &client) {
            Ok(r) => println!("{}: {} events delivered, {} rejected, all {} on the server", dir.display(), r.delivered, r.rejected, journal.events().len()),
            Err((r, e)) => {
                failed += 1;
                println!("{}: {} delivered, {} still waiting: {e}", dir.display(), r.delivered, r.pending);
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} journals could not be delivered completely; run the sync again later", journals.len());
    }
    Ok(())
}
