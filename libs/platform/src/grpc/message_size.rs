//! The largest message a server reads (`grpc.max_message_bytes`), refused as gRPC says
//! a too-large message is refused: RESOURCE_EXHAUSTED.
//!
//! tonic's own limit (set on every generated server by the runtime) answers
//! OUT_OF_RANGE, and only for the servers it is set on. This layer reads the 5-byte
//! prefix of each message of every request body (flag, then the length as a 32-bit
//! big-endian number) as the bytes arrive, and fails the body with RESOURCE_EXHAUSTED
//! at the first prefix over the limit: before the message is buffered, and before
//! tonic's decoder sees it, so unary calls, client streams, health and reflection all
//! answer the same way.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// Length of a gRPC message prefix: compression flag and 32-bit length.
const PREFIX: usize = 5;

/// Follows the message prefixes of a gRPC body across however its bytes are split
/// into frames.
#[derive(Debug, Clone)]
struct Prefixes {
    max_bytes: usize,
    prefix: [u8; PREFIX],
    prefix_len: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl Prefixes {
    fn new(max_bytes: usize) -> Self {
        Self { max_bytes, prefix: [0; PREFIX], prefix_len: 0, remaining: 0 }
    }

    /// Reads `data`; the length of the first message over the limit, if one starts.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), usize> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (PREFIX - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == PREFIX {
                let len = u32::from_be_bytes([self.prefix[1], self.prefix[2], self.prefix[3], self.prefix[4]]) as usize;
                if len > self.max_bytes {
                    return Err(len);
                }
                self.remaining = len;
                self.prefix_len = 0;
            }
        }
        Ok(())
    }
}

pin_project_lite::pin_project! {
    /// A request body that fails at the first message over the limit.
    struct Limited {
        #[pin]
        inner: tonic::body::Body,
        prefixes: Prefixes,
        failed: bool,
    }
}

impl Body for Limited {
    type Data = <tonic::body::Body as Body>::Data;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Status>>> {
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(len) = this.prefixes.scan(data)
        {
            *this.failed = true;
            let max = this.prefixes.max_bytes;
            return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                "a message of {len} bytes is larger than the server accepts ({max} bytes, grpc.max_message_bytes)"
            )))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Refuses request messages larger than `max_bytes` with RESOURCE_EXHAUSTED.
#[derive(Debug, Clone, Copy)]
pub struct MessageSizeLayer {
    max_bytes: usize,
}

impl MessageSizeLayer {
    /// A layer refusing messages over `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

impl<S> tower::Layer<S> for MessageSizeLayer {
    type Service = MessageSize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageSize { inner, max_bytes: self.max_bytes }
    }
}

/// The service [`MessageSizeLayer`] wraps around a server.
#[derive(Debug, Clone)]
pub struct MessageSize<S> {
    inner: S,
    max_bytes: usize,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for MessageSize<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let body = Limited { inner: body, prefixes: Prefixes::new(self.max_bytes), failed: false };
        self.inner.call(http::Request::from_parts(parts, tonic::body::Body::new(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len));
        m
    }

    #[test]
    fn messages_up_to_the_limit_pass_however_the_bytes_are_split() {
        let stream: Vec<u8> = [message(10), message(0), message(100), message(3)].concat();
        for split in [1, 2, 4, 5, 6, 7, 64, 1000] {
            let mut p = Prefixes::new(100);
            for chunk in stream.chunks(split) {
                assert_eq!(p.scan(chunk), Ok(()), "split {split}");
            }
        }
    }

    #[test]
    fn the_first_message_over_the_limit_is_named_by_its_length_wherever_it_starts() {
        let stream: Vec<u8> = [message(10), message(101), message(3)].concat();
        for split in [1, 3, 5, 16, 1000] {
            let mut p = Prefixes::new(100);
            let found = stream.chunks(split).map(|chunk| p.scan(chunk)).find(Result::is_err);
            assert_eq!(found, Some(Err(101)), "split {split}");
        }
        let mut p = Prefixes::new(100);
        assert_eq!(p.scan(&[0, 0xff, 0xff, 0xff, 0xff]), Err(u32::MAX as usize));
    }
}
