//! Routes that sources serve on the HTTP server (webhook ingress), added
//! as the sources start: the server looks the path up per request, so a
//! source kind brings its own routes without the server knowing the kind.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use dashmap::DashMap;
use futures_util::future::LocalBoxFuture;
use serde_json::json;

/// A source that answers `POST <path>`.
pub trait Ingress: Send + Sync + 'static {
    /// Answers one request.
    fn receive(self: Arc<Self>, req: HttpRequest, body: web::Payload) -> LocalBoxFuture<'static, HttpResponse>;
    /// Starts accepting (until then the route answers 503).
    fn open(&self);
    /// Stops accepting (503 with Retry-After), at the start of shutdown.
    fn close(&self);
    /// Copies live counters into the component's status entry.
    fn refresh_status(&self) {}
}

/// The ingress routes, by exact path.
#[derive(Clone, Default)]
pub struct IngressRoutes {
    // Looked up per request by a path the sender chose: a per-process
    // seed, and foldhash for its cost.
    routes: Arc<DashMap<String, Arc<dyn Ingress>, foldhash::fast::RandomState>>,
    /// Every source has started: an unknown path is now really unknown.
    started: Arc<std::sync::atomic::AtomicBool>,
}

impl IngressRoutes {
    /// Serves `route` at `path` (replacing what was there).
    pub fn add(&self, path: &str, route: Arc<dyn Ingress>) {
        self.routes.insert(path.to_string(), route);
    }

    fn get(&self, path: &str) -> Option<Arc<dyn Ingress>> {
        self.routes.get(path).map(|r| r.value().clone())
    }

    fn all(&self) -> Vec<Arc<dyn Ingress>> {
        self.routes.iter().map(|r| r.value().clone()).collect()
    }

    /// Opens every route: start-up is over.
    pub fn open_all(&self) {
        self.all().iter().for_each(|r| r.open());
        self.started.store(true, std::sync::atomic::Ordering::Release);
    }

    fn starting(&self) -> bool {
        !self.started.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Closes every route.
    pub fn close_all(&self) {
        self.all().iter().for_each(|r| r.close());
    }

    /// Refreshes every route's status entry.
    pub fn refresh_status(&self) {
        self.all().iter().for_each(|r| r.refresh_status());
    }
}

/// The server's default service: a registered path gets its source, POST
/// only; anything else is 404, but 503 while sources are still starting (a
/// sender retries a 503, and its path may be about to exist).
pub async fn dispatch(req: HttpRequest, body: web::Payload, routes: web::Data<IngressRoutes>) -> HttpResponse {
    let Some(route) = routes.get(req.path()) else {
        if routes.starting() && req.method() == actix_web::http::Method::POST {
            return HttpResponse::ServiceUnavailable()
                .insert_header((actix_web::http::header::RETRY_AFTER, "5"))
                .json(json!({"error": "starting", "retry_after": 5}));
        }
        return HttpResponse::NotFound().json(json!({"error": "not_found"}));
    };
    if req.method() != actix_web::http::Method::POST {
        return HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, "POST"))
            .json(json!({"error": "method_not_allowed"}));
    }
    route.receive(req, body).await
}
