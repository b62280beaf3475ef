//! Side-by-side CPU benchmark: food101 (candle + the engine) against TensorFlow/Keras and PyTorch,
//! same machine, same threads, same cases, in one run. Every (framework, case, threads) runs in
//! its own process so that peak RSS belongs to that case alone.
//!
//!     cargo run --release --bin bench -- --threads 1,2 --json data-cache/bench.json
//!
//! Peers run through `bench/peers.py` in the venv made by `bench/setup-peers.sh`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use food101::candle_core::{Device, Tensor};
use food101::candle_nn::{loss, VarMap};
use food101::train::{Adam, AdamConfig};
use rand::SeedableRng;
use food101::data::{DataLoader, Dataset, Normalization, PipelineConfig, Preprocessor, Resize};
use food101::model::LayerKind;
use food101::{ClassifierHead, MobileNetV2, MobileNetV2Config};
use serde::{Deserialize, Serialize};

#[derive(Parser, Clone)]
#[command(about = "food101 vs TensorFlow vs PyTorch on MobileNetV2, CPU")]
struct Args {
    /// food101, tensorflow, tensorflow-xla (its model steps compiled by XLA; not the etl cases),
    /// pytorch. Ratios against TensorFlow take the faster of tensorflow and tensorflow-xla.
    #[arg(long, default_value = "food101,tensorflow,pytorch", value_delimiter = ',')]
    frameworks: Vec<String>,
    /// inference, head, phase2, full; etl and etl-aa (need --data) time the input pipeline with
    /// `tf.image.resize`'s default bilinear and with antialiasing (Pillow's, our training default).
    #[arg(long, default_value = "inference,head,phase2,full", value_delimiter = ',')]
    cases: Vec<String>,
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Batch of every case but `full`.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Batch of the `full` case.
    #[arg(long, default_value_t = 8)]
    full_batch: usize,
    #[arg(long, default_value_t = 224)]
    size: usize,
    #[arg(long, default_value_t = 101)]
    classes: usize,
    /// Timed steps per case (after 2 warm-up steps).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Runs of every (framework, case, threads), taken in turn; the median is reported. This
    /// machine's speed drifts by 15-25% between runs, and taking turns spreads the drift over
    /// every framework alike.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Image folder for the `etl` case (class folders or Food-101 layout; its train split is read).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Python of the peers' venv.
    #[arg(long, default_value = "data-cache/venv-peers/bin/python")]
    python: PathBuf,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run one case of food101 in this process.
    #[arg(long, hide = true)]
    worker: Option<String>,
    #[arg(long, hide = true, default_value_t = 1)]
    worker_threads: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Measurement {
    framework: String,
    case: String,
    threads: usize,
    batch: usize,
    images_per_s: f64,
    peak_rss_mb: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gflops: Option<f64>,
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

/// Forward FLOPs of the base for one image (2 per multiply-add, convolutions only).
fn forward_flops(model: &MobileNetV2) -> f64 {
    let layers = model.layers();
    layers
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Conv2D | LayerKind::DepthwiseConv2D))
        .map(|l| 2.0 * l.params as f64 * (l.output_shape[0] * l.output_shape[1]) as f64)
        .sum()
}

/// The `etl` cases: decode, resize and batch JPEGs with the data pipeline.
fn run_etl(args: &Args, case: &str) -> Result<Measurement> {
    let data = args.data.as_ref().context("the etl case needs --data DIR")?;
    let dataset = Dataset::open(data)?;
    let wanted = (args.steps + 2) * args.batch;
    let samples = dataset.train.iter().cycle().take(wanted).cloned().collect(); // repeats a small dataset
    let resize = if case == "etl-aa" { Resize::Antialiased } else { Resize::Bilinear };
    let preprocessor = Preprocessor::new((args.size, args.size), Normalization::MinusOneToOne).with_resize(resize);
    let config = PipelineConfig { preprocessor, batch_size: args.batch, ..PipelineConfig::default() };
    let loader = DataLoader::new(samples, config, &Device::Cpu);
    let mut epoch = loader.epoch(0);
    for _ in 0..2 {
        epoch.next().context("too few images for the warm-up")??;
    }
    let start = Instant::now();
    let mut images = 0;
    for batch in epoch {
        images += batch?.indices.len();
    }
    Ok(Measurement {
        framework: "food101".into(),
        case: case.into(),
        threads: args.worker_threads,
        batch: args.batch,
        images_per_s: images as f64 / start.elapsed().as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
        gflops: None,
    })
}

/// One case of ours, timed in this process.
fn run_worker(args: &Args, case: &str) -> Result<Measurement> {
    // What `food101 train` does too: each step reuses the memory the last one freed.
    food101::memory::keep_freed_memory();
    if case.starts_with("etl") {
        return run_etl(args, case);
    }
    let device = Device::Cpu;
    let batch = if case == "full" { args.full_batch } else { args.batch };
    let config = MobileNetV2Config::default().with_input_size(args.size, args.size);
    let mut model = MobileNetV2::new(config, &device)?;
    let varmap = VarMap::new();
    let head = ClassifierHead::new(&varmap, &device, model.feature_dim(), args.classes, 0.3, 0)?;
    let x = Tensor::randn(0f32, 1.0, (batch, 3, args.size, args.size), &device)?;
    let labels = Tensor::from_vec((0..batch as u32).map(|i| i % args.classes as u32).collect::<Vec<_>>(), batch, &device)?;
    let lr = if case == "phase2" { 1e-5 } else { 1e-3 };
    match case {
        "inference" | "head" => model.freeze_all(),
        "phase2" => model.unfreeze_last(50),
        "full" => model.unfreeze_all(),
        other => bail!("unknown case {other}"),
    }
    let mut vars = head.trainable_variables();
    vars.extend(model.trainable_variables());
    let mut adam = Adam::new(vars, AdamConfig { learning_rate: lr, ..AdamConfig::default() })?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut step = || -> Result<()> {
        if case == "inference" {
            head.predict(&model.forward_base(&x)?)?.to_vec2::<f32>()?;
        } else {
            let logits = head.forward_train(&model.forward_base(&x)?, &mut rng)?;
            adam.step(&loss::cross_entropy(&logits, &labels)?.backward()?)?;
        }
        Ok(())
    };
    for _ in 0..2 {
        step()?;
    }
    let start = Instant::now();
    for _ in 0..args.steps {
        step()?;
    }
    let images_per_s = (batch * args.steps) as f64 / start.elapsed().as_secs_f64();
    let gflops = (case == "inference").then(|| forward_flops(&model) * images_per_s / 1e9);
    Ok(Measurement {
        framework: "food101".into(),
        case: case.into(),
        threads: args.worker_threads,
        batch,
        images_per_s,
        peak_rss_mb: peak_rss_mb(),
        gflops,
    })
}

/// Single-precision matrix-multiply peak of this machine at `threads` (GFLOP/s, best of 3).
fn matmul_peak(threads: usize) -> Result<f64> {
    let out = Command::new(std::env::current_exe()?).args(["--worker", "matmul"]).env("RAYON_NUM_THREADS", threads.to_string()).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn matmul_worker() -> Result<()> {
    let n = 1024;
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    a.matmul(&b)?;
    let mut best = 0f64;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..5 {
            a.matmul(&b)?;
        }
        best = best.max(5.0 * 2.0 * (n * n * n) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    println!("{best}");
    Ok(())
}

/// Timed batches of the `etl` cases at least: both pipelines prefetch, so the first timed batches
/// may already be waiting; over this many the head start is a few percent. With the 2 warm-up
/// batches that is nearly one pass over the 2,000 cats-vs-dogs photos, the same photos on every
/// side (photo sizes differ, and so does the work per photo).
const ETL_MIN_STEPS: usize = 60;

fn run_one(args: &Args, framework: &str, case: &str, threads: usize) -> Result<Measurement> {
    let batch = if case == "full" { args.full_batch } else { args.batch };
    let steps = if case.starts_with("etl") { args.steps.max(ETL_MIN_STEPS) } else { args.steps }.to_string();
    let mut cmd = if framework == "food101" {
        let mut c = Command::new(std::env::current_exe()?);
        c.args(["--worker", case, "--worker-threads", &threads.to_string()]);
        c.args(["--batch", &args.batch.to_string(), "--full-batch", &args.full_batch.to_string()]);
        c.args(["--size", &args.size.to_string(), "--classes", &args.classes.to_string(), "--steps", &steps]);
        if let Some(data) = &args.data {
            c.arg("--data").arg(data);
        }
        c.env("RAYON_NUM_THREADS", threads.to_string());
        c
    } else {
        if !args.python.exists() {
            bail!("{} is missing: run bench/setup-peers.sh first", args.python.display());
        }
        let mut c = Command::new(&args.python);
        c.args(["bench/peers.py", "--framework", framework, "--case", case, "--threads", &threads.to_string()]);
        c.args(["--batch", &batch.to_string(), "--size", &args.size.to_string(), "--classes", &args.classes.to_string()]);
        c.args(["--steps", &steps]);
        if let Some(data) = &args.data {
            let train = data.join("train");
            c.arg("--data").arg(if train.is_dir() { train } else { data.join("images") });
        }
        c
    };
    let out = cmd.output().with_context(|| format!("starting {framework} {case}"))?;
    if !out.status.success() {
        bail!("{framework} {case} x{threads} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).context("no JSON line from the worker")?;
    Ok(serde_json::from_str(line)?)
}

/// The CPU's model name as /proc/cpuinfo gives it (Linux), else the architecture.
fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, name)| name.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The run with the median images/s (the upper middle of an even count).
fn median(mut runs: Vec<Measurement>) -> Option<Measurement> {
    runs.sort_by(|a, b| a.images_per_s.total_cmp(&b.images_per_s));
    let middle = runs.len() / 2;
    (!runs.is_empty()).then(|| runs.swap_remove(middle))
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.worker.as_deref() {
        Some("matmul") => return matmul_worker(),
        Some(case) => {
            println!("{}", serde_json::to_string(&run_worker(&args, case)?)?);
            return Ok(());
        }
        None => {}
    }
    let mut results = Vec::new();
    let cpu = cpu_model();
    println!("CPU: {cpu}, {} usable cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("{:<14} {:<9} {:>3} {:>5} {:>10} {:>10} {:>9}", "framework", "case", "thr", "batch", "img/s", "peak MB", "GFLOP/s");
    for &threads in &args.threads {
        for case in &args.cases {
            let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(); args.frameworks.len()];
            for _ in 0..args.repeat.max(1) {
                for (framework, runs) in args.frameworks.iter().zip(&mut runs) {
                    if framework == "tensorflow-xla" && case.starts_with("etl") {
                        continue; // tf.data has no XLA form
                    }
                    match run_one(&args, framework, case, threads) {
                        Ok(m) => runs.push(m),
                        Err(e) => eprintln!("{framework} {case} x{threads}: {e:#}"),
                    }
                }
            }
            for m in runs.into_iter().filter_map(median) {
                let gflops = m.gflops.map(|g| format!("{g:.1}")).unwrap_or_default();
                println!(
                    "{:<14} {:<9} {:>3} {:>5} {:>10.1} {:>10.0} {:>9}",
                    m.framework, m.case, m.threads, m.batch, m.images_per_s, m.peak_rss_mb, gflops
                );
                results.push(m);
            }
        }
    }
    println!("\nratios food101 / peer (images/s; > 1 means food101 is faster):");
    for m in results.iter().filter(|m| m.framework == "food101") {
        // The strongest of the named peers on this case.
        let ratio = |peers: &[&str]| {
            results
                .iter()
                .filter(|p| peers.contains(&p.framework.as_str()) && p.case == m.case && p.threads == m.threads)
                .max_by(|a, b| a.images_per_s.total_cmp(&b.images_per_s))
                .map(|p| format!("{:.2}x (peak RSS {:.2}x{})", m.images_per_s / p.images_per_s, m.peak_rss_mb / p.peak_rss_mb, if p.framework == "tensorflow-xla" { ", XLA" } else { "" }))
                .unwrap_or_else(|| "-".into())
        };
        println!("  {:<9} x{}: vs TensorFlow {}   vs PyTorch {}", m.case, m.threads, ratio(&["tensorflow", "tensorflow-xla"]), ratio(&["pytorch"]));
    }
    for &threads in &args.threads {
        println!("matmul peak ({threads} thread(s)): {:.1} GFLOP/s single precision", matmul_peak(threads)?);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&serde_json::json!({ "cpu": cpu, "results": results }))?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
