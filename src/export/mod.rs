//! Placeholder until the exporter lands: the API the proxy and app use.
use crate::config::ExportConfig;
use crate::metrics::ExportMetrics;
use crate::span::Span;

#[derive(Clone)]
pub struct SpanSink {
    tx: Option<tokio::sync::mpsc::Sender<Span>>,
}
impl SpanSink {
    pub fn send(&self, span: Span) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(span);
        }
    }
}
pub struct EncodeOptions {
    pub resource_tags: Vec<(String, String)>,
}
pub struct Batcher {
    rx: tokio::sync::mpsc::Receiver<Span>,
}
impl Batcher {
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                s = self.rx.recv() => if s.is_none() { return },
                () = &mut shutdown => return,
            }
        }
    }
}
pub fn channel(
    config: &ExportConfig,
    _metrics: ExportMetrics,
    _options: EncodeOptions,
) -> (SpanSink, Option<Batcher>) {
    match config {
        ExportConfig::Enabled(z) => {
            let (tx, rx) = tokio::sync::mpsc::channel(z.queue_capacity);
            (SpanSink { tx: Some(tx) }, Some(Batcher { rx }))
        }
        ExportConfig::Disabled => (SpanSink { tx: None }, None),
    }
}
