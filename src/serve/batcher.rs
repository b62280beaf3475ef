//! Predicting concurrent requests together: a worker thread takes the first waiting model input
//! (an upload already through the classifier's preprocessor), waits a few milliseconds for more
//! (up to a batch), runs them through the network as one batch and answers each request.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Tensor;
use tokio::sync::oneshot;

use crate::predict::{ImageClassifier, Prediction};

type Reply = oneshot::Sender<Result<Vec<Prediction>, String>>;

/// One model input (`3 x height x width` floats), how many classes to answer, and where.
type Job = (Vec<f32>, usize, Reply);

pub struct Batcher {
    queue: Sender<Job>,
}

impl Batcher {
    pub fn start(classifier: Arc<ImageClassifier>, max_batch: usize, wait: Duration) -> Self {
        let (queue, jobs) = channel::<Job>();
        std::thread::spawn(move || {
            while let Ok(first) = jobs.recv() {
                let mut batch = vec![first];
                let deadline = Instant::now() + wait;
                while batch.len() < max_batch.max(1) {
                    match jobs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(job) => batch.push(job),
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                let n = batch.len();
                let (inputs, replies): (Vec<Vec<f32>>, Vec<(usize, Reply)>) = batch.into_iter().map(|(input, k, reply)| (input, (k, reply))).unzip();
                let k = replies.iter().map(|(k, _)| *k).max().unwrap_or(5);
                let (h, w) = classifier.preprocessor.image_size;
                let answers = Tensor::from_vec(inputs.concat(), (n, 3, h, w), classifier.model.device())
                    .map_err(crate::Error::from)
                    .and_then(|batch| classifier.predict_batch(&batch, k));
                match answers {
                    Ok(answers) => {
                        for ((k, reply), mut top) in replies.into_iter().zip(answers) {
                            top.truncate(k);
                            let _ = reply.send(Ok(top));
                        }
                    }
                    Err(e) => {
                        for (_, reply) in replies {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// The top-`k` classes of one model input, predicted with whatever else is waiting.
    pub async fn predict(&self, input: Vec<f32>, k: usize) -> Result<Vec<Prediction>, String> {
        let (tx, rx) = oneshot::channel();
        self.queue.send((input, k, tx)).map_err(|_| "the prediction worker stopped".to_string())?;
        rx.await.map_err(|_| "the prediction worker stopped".to_string())?
    }
}
