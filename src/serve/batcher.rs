//! Predicting concurrent requests together: a worker thread takes the first waiting image, waits a
//! few milliseconds for more (up to a batch), runs them through the network as one batch and
//! answers each request.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use tokio::sync::oneshot;

use crate::predict::{ImageClassifier, Prediction};

type Reply = oneshot::Sender<Result<Vec<Prediction>, String>>;

pub struct Batcher {
    queue: Sender<(RgbImage, usize, Reply)>,
}

impl Batcher {
    pub fn start(classifier: Arc<ImageClassifier>, max_batch: usize, wait: Duration) -> Self {
        let (queue, jobs) = channel::<(RgbImage, usize, Reply)>();
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
                let (images, replies): (Vec<RgbImage>, Vec<(usize, Reply)>) = batch.into_iter().map(|(img, k, reply)| (img, (k, reply))).unzip();
                let k = replies.iter().map(|(k, _)| *k).max().unwrap_or(5);
                match classifier.predict_images(&images, k) {
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

    /// The top-`k` classes of one image, predicted with whatever else is waiting.
    pub async fn predict(&self, image: RgbImage, k: usize) -> Result<Vec<Prediction>, String> {
        let (tx, rx) = oneshot::channel();
        self.queue.send((image, k, tx)).map_err(|_| "the prediction worker stopped".to_string())?;
        rx.await.map_err(|_| "the prediction worker stopped".to_string())?
    }
}
