//! Cross-service flows: several services started in one process, each with its own
//! database, sharing one exchange on the real local RabbitMQ, talking over real gRPC.
//! The flows live in `tests/flows`.
