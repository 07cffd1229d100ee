//! `control-plane status` as readable tables.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::controlplane::v1 as pb;

use super::report::{Report, endpoint_state, route_state, short_type, source_state};

/// Columns are separated by this many spaces.
const GAP: usize = 2;
/// Subscribed names shown per type before "(+N more)".
const NAMES_SHOWN: usize = 3;

/// A plain text table: a header row and left-aligned columns.
#[derive(Debug)]
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(i))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + GAP;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// "12s ago" for a Unix millisecond time; "-" for none.
fn ago(unix_ms: i64, now: SystemTime) -> String {
    if unix_ms <= 0 {
        return "-".to_owned();
    }
    let then = UNIX_EPOCH + Duration::from_millis(unix_ms.unsigned_abs());
    let elapsed = now.duration_since(then).unwrap_or_default();
    format!(
        "{} ago",
        humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
    )
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

impl Report {
    /// The report as text: an overview, a services table (one row per
    /// endpoint) and a clients table (one row per client and type).
    pub fn to_text(&self, now: SystemTime) -> String {
        let mut out = String::new();
        self.overview(&mut out, now);
        out.push('\n');
        self.services_table(&mut out);
        out.push('\n');
        self.routes_table(&mut out);
        out.push('\n');
        self.clients_table(&mut out, now);
        out
    }

    fn overview(&self, out: &mut String, now: SystemTime) {
        let info = &self.info;
        let source = info.source.clone().unwrap_or_default();
        let uptime = humantime::format_duration(Duration::from_secs(info.uptime_ms / 1000));
        let _ = writeln!(
            out,
            "control-plane {}  replica {}  instance {}  up {uptime}",
            info.version, info.replica, info.instance_id
        );
        let _ = writeln!(
            out,
            "namespace {}  cluster domain {}  services {}  clients {}",
            info.namespace, info.cluster_domain, info.services, info.connected_clients
        );
        let refusals = info.refusals.clone().unwrap_or_default();
        let transport = if info.transport.is_empty() {
            "plaintext"
        } else {
            info.transport.as_str()
        };
        let _ = writeln!(
            out,
            "transport {transport}  refused: client SAN not allowed {}, over --max-streams {}, \
             over --max-streams-per-peer {}",
            refusals.client_san_not_allowed, refusals.max_streams, refusals.max_streams_per_peer
        );
        if !refusals.last.is_empty() {
            let _ = writeln!(
                out,
                "  last refusal: {} ({})",
                refusals.last,
                ago(refusals.last_unix_ms, now)
            );
        }
        let detail = if source.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", source.detail)
        };
        let _ = writeln!(
            out,
            "source {}{detail}: {} since {}",
            source.kind,
            source_state(source.state),
            ago(source.state_since_unix_ms, now)
        );
        if !source.last_event.is_empty() {
            let _ = writeln!(
                out,
                "  last event: {} ({})",
                source.last_event,
                ago(source.last_event_unix_ms, now)
            );
        }
        if !source.last_error.is_empty() {
            let _ = writeln!(
                out,
                "  last error: {} ({})",
                source.last_error,
                ago(source.last_error_unix_ms, now)
            );
        }
    }

    fn services_table(&self, out: &mut String) {
        if self.services.is_empty() {
            out.push_str("SERVICES: none\n");
            return;
        }
        let mut table = Table::new(&[
            "SERVICE", "PORT", "VERSION", "POLICY", "ENDPOINT", "STATE", "ZONE", "INSTANCE",
            "DETAIL",
        ]);
        for service in &self.services {
            for port in &service.ports {
                let port_label = if port.name.is_empty() {
                    port.port.to_string()
                } else {
                    format!("{} ({})", port.port, port.name)
                };
                let mut policy = if service.lb_policy.is_empty() {
                    "round_robin".to_owned()
                } else {
                    service.lb_policy.clone()
                };
                if service.zone_aware {
                    policy.push_str(",zone");
                }
                if !port.routes.is_empty() {
                    policy.push_str(&format!(",routes:{}", port.routes.join("+")));
                }
                let lead = [
                    service.name.clone(),
                    port_label,
                    service.version.clone(),
                    policy,
                ];
                if port.endpoints.is_empty() {
                    let mut row = lead.to_vec();
                    row.extend(["(no endpoints)".to_owned()]);
                    table.row(row);
                }
                for endpoint in &port.endpoints {
                    let mut row = lead.to_vec();
                    row.extend([
                        format!("{}:{}", endpoint_host(&endpoint.address), endpoint.port),
                        endpoint_state(endpoint.state).to_owned(),
                        or_dash(&endpoint.zone),
                        or_dash(&endpoint.instance),
                        or_dash(&endpoint.detail),
                    ]);
                    table.row(row);
                }
            }
        }
        table.render(out);
    }

    fn routes_table(&self, out: &mut String) {
        let Some(routes) = &self.routes else {
            out.push_str("ROUTES: not reported by this control plane\n");
            return;
        };
        let support = routes.support.clone().unwrap_or_default();
        if !support.enabled {
            let _ = writeln!(out, "ROUTES: off ({})", support.detail);
            return;
        }
        if routes.routes.is_empty() {
            let _ = writeln!(out, "ROUTES: none (from {})", support.detail);
            return;
        }
        let _ = writeln!(out, "routes from {}", support.detail);
        let mut table = Table::new(&["ROUTE", "STATE", "RULES", "IN FORCE FOR", "DETAIL"]);
        for route in &routes.routes {
            let mut detail = route.reason.clone();
            if !route.missing_parents.is_empty() && !route.attached.is_empty() {
                detail = format!("missing parents: {}", route.missing_parents.join(", "));
            }
            table.row(vec![
                route.name.clone(),
                route_state(route.state).to_owned(),
                route.rules.to_string(),
                if route.attached.is_empty() {
                    "-".to_owned()
                } else {
                    route.attached.join(",")
                },
                or_dash(&detail),
            ]);
        }
        table.render(out);
    }

    fn clients_table(&self, out: &mut String, now: SystemTime) {
        if self.clients.is_empty() {
            out.push_str("CLIENTS: none\n");
            return;
        }
        let mut table = Table::new(&[
            "STREAM",
            "NODE",
            "PEER",
            "CONNECTED",
            "TYPE",
            "SUBSCRIBED",
            "SENT",
            "ACKED",
            "NACK",
        ]);
        for client in &self.clients {
            let lead = [
                client.stream_id.to_string(),
                or_dash(&client.node_id),
                or_dash(&client.peer),
                ago(client.connected_at_unix_ms, now),
            ];
            if client.types.is_empty() {
                let mut row = lead.to_vec();
                row.push("(nothing requested yet)".to_owned());
                table.row(row);
            }
            for state in &client.types {
                let mut row = lead.to_vec();
                row.extend([
                    short_type(&state.type_url).to_owned(),
                    subscribed(state),
                    sent(state),
                    or_dash(&state.acked_version),
                    nack(state, now),
                ]);
                table.row(row);
            }
            for unknown in &client.unknown_types {
                let mut row = lead.to_vec();
                row.extend([
                    unknown.type_url.clone(),
                    format!("(not served; {} requests ignored)", unknown.requests),
                ]);
                table.row(row);
            }
        }
        table.render(out);
    }
}

fn endpoint_host(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_owned()
    }
}

fn subscribed(state: &pb::TypeState) -> String {
    let mut parts: Vec<String> = Vec::new();
    if state.wildcard {
        parts.push("*".to_owned());
    }
    parts.extend(state.names.iter().take(NAMES_SHOWN).cloned());
    if state.names.len() > NAMES_SHOWN {
        parts.push(format!("(+{} more)", state.names.len() - NAMES_SHOWN));
    }
    if parts.is_empty() {
        "(none)".to_owned()
    } else {
        parts.join(",")
    }
}

fn sent(state: &pb::TypeState) -> String {
    if state.sent_version.is_empty() {
        return "-".to_owned();
    }
    let waiting = if state.pending { ", waiting" } else { "" };
    format!(
        "{} (nonce {}{waiting})",
        state.sent_version, state.sent_nonce
    )
}

fn nack(state: &pb::TypeState, now: SystemTime) -> String {
    if state.nacks == 0 {
        return "-".to_owned();
    }
    format!(
        "{}: {} ({}, {} total)",
        state.nack_version,
        state.nack_error,
        ago(state.nack_at_unix_ms, now),
        state.nacks
    )
}

#[cfg(test)]
mod tests;
