//! actix-web peer for the benchmark (python -m bench): one worker thread (`workers(1)` unless BENCH_WORKERS says otherwise),
//! no logger middleware; the 1 KB body is deserialised into a typed struct by serde (`web::Json<Item>`).
use actix_web::{get, post, web, App, HttpResponse, HttpServer, Responder};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[allow(dead_code)]
struct Item {
    name: String,
    price: f64,
    tags: Vec<String>,
    description: String,
}

#[derive(Serialize)]
struct Message<'a> {
    message: &'a str,
}

#[derive(Deserialize)]
struct Query {
    q: Option<String>,
}

#[derive(Serialize)]
struct User {
    id: i64,
    q: Option<String>,
}

#[derive(Serialize)]
struct ItemOut {
    name: String,
    tag_count: usize,
}

#[get("/plaintext")]
async fn plaintext() -> impl Responder {
    HttpResponse::Ok().content_type("text/plain").body("Hello, World!")
}

#[get("/json")]
async fn json() -> impl Responder {
    HttpResponse::Ok().json(Message { message: "Hello, World!" })
}

#[get("/users/{user_id}")]
async fn user(path: web::Path<i64>, query: web::Query<Query>) -> impl Responder {
    HttpResponse::Ok().json(User { id: path.into_inner(), q: query.into_inner().q })
}

#[post("/items")]
async fn items(item: web::Json<Item>) -> impl Responder {
    let item = item.into_inner();
    HttpResponse::Ok().json(ItemOut { tag_count: item.tags.len(), name: item.name })
}

#[get("/sleep")]
async fn sleep() -> impl Responder {
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1)).await;
    HttpResponse::Ok().content_type("text/plain").body("Hello, World!")
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("BENCH_PORT").expect("BENCH_PORT").parse().expect("port");
    let workers: usize = std::env::var("BENCH_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    HttpServer::new(|| App::new().service(plaintext).service(json).service(user).service(items).service(sleep))
        .workers(workers)
        .backlog(4096)
        .max_connections(100_000)
        .bind(("127.0.0.1", port))?
        .run()
        .await
}
