//! `food101`: the command line of the crate.

use anyhow::Result;
use clap::{Parser, Subcommand};
use food101::candle_core::Device;

mod commands;
use commands::{data, fetch_weights, mlflow, predict, serve, summary, train};

#[derive(Parser)]
#[command(name = "food101", version, about = "Food-101 transfer learning on MobileNetV2 (candle)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Top-K classes of images with a trained model folder or a classifier checkpoint.
    Predict(predict::PredictArgs),
    /// The main job: both training phases, evaluation and export (downloads Food-101 and the
    /// ImageNet weights when no --data / --weights are given).
    Train(Box<train::TrainArgs>),
    /// The web demo: a page to upload a photo and see the top-5, and a JSON API.
    Serve(serve::ServeArgs),
    /// MLflow: deliver locally recorded runs to a server.
    Mlflow {
        #[command(subcommand)]
        command: mlflow::MlflowCommand,
    },
    /// The Keras layer table of the MobileNetV2 base.
    Summary(summary::SummaryArgs),
    /// Download timm's ImageNet MobileNetV2 weights into the Hugging Face cache.
    FetchWeights,
    /// Datasets: check one, or download Food-101.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
}

fn main() -> Result<()> {
    let device = Device::Cpu;
    match Cli::parse().command {
        Command::Train(args) => {
            // A training run reuses its freed activations step after step (see the function).
            food101::memory::keep_freed_memory();
            train::run(*args, &device)
        }
        Command::Predict(args) => predict::run(args, &device),
        Command::Serve(args) => serve::run(args, &device),
        Command::Mlflow { command } => mlflow::run(command),
        Command::Summary(args) => summary::run(args, &device),
        Command::FetchWeights => fetch_weights::run(),
        Command::Data { command } => data::run(command),
    }
}
