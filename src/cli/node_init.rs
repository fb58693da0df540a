//! `kindling node init`: PID 1 of a node container.

pub async fn run() -> anyhow::Result<()> {
    kindling::node::supervisor::run().await
}
