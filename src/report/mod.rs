//! TEMP stub until the store branch lands.
#[derive(Debug, thiserror::Error)]
#[error("report")]
pub struct Error;
pub struct ReportOptions {
    pub dbs: Vec<std::path::PathBuf>,
    pub route: Option<String>,
    pub since: Option<std::time::Duration>,
}
pub fn run(_o: &ReportOptions, _w: &mut dyn std::io::Write) -> Result<(), Error> {
    Ok(())
}
