//! Why a request was not served: a status and a sentence, as plain text,
//! so the page can show it as is and `curl` users read it.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

/// See the module docs.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    /// Seconds after which a retry may succeed (`Busy`).
    pub retry_after: Option<u32>,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// At a limit: try again later.
    pub fn busy(message: impl Into<String>) -> Self {
        Refusal {
            retry_after: Some(1),
            ..Refusal::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Refusal::new(StatusCode::NOT_FOUND, format!("{what}: no such task"))
    }

    /// The record or the files could not be read or written.
    pub fn storage(e: impl std::fmt::Display) -> Self {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the master cannot use its storage: {e}"),
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut message = self.message;
        message.push('\n');
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}
