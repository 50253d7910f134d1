//! Counters read at scrape time as a table of fields, for the collectors whose
//! metrics are plain numbers kept elsewhere (`log_metrics`, `tls_metrics`).

use prometheus::{
    IntCounter, IntGauge, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};

/// name (without the `rustkv_` prefix), help, counter (true) or gauge (false),
/// and how to read it from `T`.
pub type Field<T> = (&'static str, &'static str, bool, fn(&T) -> u64);

/// The fields' descriptions, for `Collector::desc`.
pub fn descs<T>(fields: &[Field<T>]) -> prometheus::Result<Vec<Desc>> {
    fields
        .iter()
        .map(|(name, help, _, _)| {
            let name = format!("rustkv_{name}");
            Desc::new(name, (*help).into(), vec![], Default::default())
        })
        .collect()
}

/// Each field's metric, read from `counters` now.
pub fn collect<T>(fields: &[Field<T>], counters: &T) -> Vec<MetricFamily> {
    let mut families = Vec::new();
    for (name, help, counter, read) in fields {
        let opts = Opts::new(*name, *help).namespace("rustkv");
        let value = read(counters);
        if *counter {
            let metric = IntCounter::with_opts(opts).expect("valid metric");
            metric.inc_by(value);
            families.extend(metric.collect());
        } else {
            let metric = IntGauge::with_opts(opts).expect("valid metric");
            metric.set(value as i64);
            families.extend(metric.collect());
        }
    }
    families
}
