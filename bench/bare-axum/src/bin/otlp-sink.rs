//! A minimal OTLP/gRPC trace receiver for the benchmark: accepts export requests, counts
//! the spans, answers success. Listens on 127.0.0.1, port from `SINK_PORT` (default 4317);
//! prints the span count when stdin closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Sink(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans: usize = req
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("SINK_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4317);
    let count = Arc::new(AtomicU64::new(0));
    let sink = Sink(count.clone());
    tokio::spawn(async move {
        let _ = tokio::task::spawn_blocking(|| {
            let mut buf = String::new();
            while std::io::stdin()
                .read_line(&mut buf)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await;
        println!("spans received: {}", count.load(Ordering::Relaxed));
        std::process::exit(0);
    });
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(sink))
        .serve(([127, 0, 0, 1], port).into())
        .await?;
    Ok(())
}
