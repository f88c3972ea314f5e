//! Placeholder until propagation lands: the API the proxy uses.
use crate::config::PropagationConfig;
use crate::span::{Sampling, SpanContext};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    W3c,
    B3Single,
    B3Multi,
    None,
    Invalid,
}
impl Seen {
    pub fn label(self) -> &'static str {
        match self {
            Seen::W3c => "w3c",
            Seen::B3Single | Seen::B3Multi => "b3",
            Seen::None => "none",
            Seen::Invalid => "invalid",
        }
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceState(String);
impl TraceState {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    pub parent: Option<SpanContext>,
    pub sampling_only: Sampling,
    pub trace_state: Option<TraceState>,
    pub seen: Seen,
}
pub fn extract(_headers: &http::HeaderMap, _config: &PropagationConfig) -> Extracted {
    Extracted {
        parent: None,
        sampling_only: Sampling::Deferred,
        trace_state: None,
        seen: Seen::None,
    }
}
pub fn inject(
    headers: &mut http::HeaderMap,
    context: &SpanContext,
    _trace_state: Option<&TraceState>,
    _seen: Seen,
    _config: &PropagationConfig,
) {
    let value = format!(
        "00-{}-{}-{:02x}",
        context.trace_id,
        context.span_id,
        u8::from(context.sampling.is_sampled())
    );
    if let Ok(v) = http::HeaderValue::from_str(&value) {
        headers.insert("traceparent", v);
    }
}
