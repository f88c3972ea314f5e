//! The batch being filled, in its exporter's wire format: a Zipkin JSON
//! list written span by span, or an OTLP request built span by span.

use std::sync::Arc;

use super::otlp::OtlpBatch;
use super::zipkin_json::{EncodeOptions, SpanEncoder};
use crate::config::Exporter;
use crate::span::Span;

/// Spans as the queue hands them over: shared by every exporter's queue.
pub type Received = Vec<Arc<Span>>;

/// One open batch.
pub enum OpenBatch {
    Zipkin(ZipkinBatch),
    Otlp(OtlpBatch),
}

impl OpenBatch {
    /// An empty batch for `exporter`.
    pub fn new(exporter: Exporter, options: &EncodeOptions) -> Self {
        match exporter {
            Exporter::Zipkin => OpenBatch::Zipkin(ZipkinBatch::new(options)),
            Exporter::Otlp => OpenBatch::Otlp(OtlpBatch::new(options)),
        }
    }

    /// Spans in the batch.
    pub fn spans(&self) -> usize {
        match self {
            OpenBatch::Zipkin(batch) => batch.spans,
            OpenBatch::Otlp(batch) => batch.spans(),
        }
    }

    /// Encodes and drops every span in `received`.
    pub fn add(&mut self, received: &mut Received) {
        for span in received.drain(..) {
            match self {
                OpenBatch::Zipkin(batch) => batch.add(&span),
                OpenBatch::Otlp(batch) => batch.add(&span),
            }
        }
    }

    /// The encoded body and its span count; the batch starts empty again.
    pub fn take(&mut self) -> (Vec<u8>, usize) {
        match self {
            OpenBatch::Zipkin(batch) => batch.take(),
            OpenBatch::Otlp(batch) => batch.take(),
        }
    }
}

/// A Zipkin batch: the JSON array so far, without its closing `]`.
pub struct ZipkinBatch {
    encoder: SpanEncoder,
    json: Vec<u8>,
    spans: usize,
}

impl ZipkinBatch {
    fn new(options: &EncodeOptions) -> Self {
        Self {
            encoder: SpanEncoder::new(options),
            json: vec![b'['],
            spans: 0,
        }
    }

    fn add(&mut self, span: &Span) {
        if self.spans > 0 {
            self.json.push(b',');
        }
        self.encoder.encode(span, &mut self.json);
        self.spans += 1;
    }

    /// Closes the array and starts the next batch in a fresh buffer (the
    /// closed one goes to the upload without a copy), as large as this one
    /// and an eighth.
    fn take(&mut self) -> (Vec<u8>, usize) {
        self.json.push(b']');
        let mut next = Vec::with_capacity(self.json.len() + self.json.len() / 8);
        next.push(b'[');
        let json = std::mem::replace(&mut self.json, next);
        (json, std::mem::take(&mut self.spans))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::encode_spans;
    use crate::export::sample::spans;

    fn received(spans: &[Span]) -> Received {
        spans.iter().cloned().map(Arc::new).collect()
    }

    #[test]
    fn spans_encoded_as_they_arrive_make_the_batch_a_list_encoding_makes() {
        let options = EncodeOptions {
            resource_tags: vec![("k8s.pod.name".into(), "api-7f9".into())],
            service_instance_id: None,
        };
        let mut open = OpenBatch::new(Exporter::Zipkin, &options);
        let all = spans(6);
        for chunk in [&all[..3], &all[3..3], &all[3..5]] {
            let mut chunk = received(chunk);
            open.add(&mut chunk);
            assert!(chunk.is_empty(), "encoded spans are dropped");
        }
        let (json, n) = open.take();
        let mut expected = Vec::new();
        encode_spans(&all[..5], &options, &mut expected);
        assert_eq!(
            (String::from_utf8(json).unwrap(), n),
            (String::from_utf8(expected).unwrap(), 5)
        );
        // The next batch starts empty, in a buffer of its own.
        open.add(&mut received(&all[5..]));
        let (json, n) = open.take();
        let mut expected = Vec::new();
        encode_spans(&all[5..], &options, &mut expected);
        assert_eq!((json, n), (expected, 1));
        assert_eq!(open.take(), (b"[]".to_vec(), 0));
    }
}
