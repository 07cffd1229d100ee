//! The reconciler's outputs: what the picker rotates over ([`PickState`],
//! with the first-batch hold) and the endpoints the application sees,
//! written in place ([`Reconciler::write_view`]).

use super::*;

impl<C: Clone + Same> Reconciler<C> {
    /// When the first-batch hold ends, while one is on: publish again then.
    pub(crate) fn hold_until(&self) -> Option<Instant> {
        match self.hold {
            FirstBatchHold::Until(at) => Some(at),
            FirstBatchHold::Off => None,
        }
    }

    /// What to publish at `now`, the view included.
    #[cfg(test)]
    pub(crate) fn publish(&mut self, now: Instant) -> Published<C> {
        let pick = self.pick_state(now, &[]);
        let mut endpoints = Vec::new();
        self.write_view(pick.active, &mut endpoints);
        Published {
            ready: pick.ready.unwrap_or_default(),
            policy: pick.policy,
            counts: pick.counts,
            service: pick.service,
            last_connect_error: pick.last_connect_error,
            endpoints,
        }
    }

    /// What the picker gets at `now`, given the connections it holds
    /// (`current`): they are compared in place, and cloned only when they
    /// changed. The view is written apart, by [`Reconciler::write_view`].
    pub(crate) fn pick_state(&mut self, now: Instant, current: &[C]) -> PickState<C> {
        let mut counts = Counts::default();
        // Indices of the entries whose connections take calls.
        let mut ready = Vec::new();
        let mut first_attempts_pending = false;
        let active = self.active_priority();
        for (at, entry) in self.entries.iter().enumerate() {
            match entry.endpoint.health {
                EndpointHealth::Draining => counts.draining += 1,
                EndpointHealth::NotReady => counts.not_ready += 1,
                EndpointHealth::Healthy => match entry.sub.as_ref() {
                    Some(sub) => match (sub.state, &sub.conn) {
                        (ConnectionState::Ready, Some(_)) => {
                            counts.ready += 1;
                            if Some(entry.endpoint.priority) == active {
                                ready.push(at);
                            }
                        }
                        (ConnectionState::NotServing, _) => counts.not_serving += 1,
                        (ConnectionState::Ejected, _) => counts.ejected += 1,
                        _ => {
                            counts.connecting += 1;
                            first_attempts_pending |= !sub.attempted;
                        }
                    },
                    None => counts.connecting += 1,
                },
            }
        }
        // Hold back a first batch while some of it is still connecting.
        if ready.is_empty() || !self.published_empty || !first_attempts_pending {
            self.hold = FirstBatchHold::Off;
        } else {
            match self.hold {
                FirstBatchHold::Off => {
                    self.hold = FirstBatchHold::Until(now + FIRST_BATCH_WAIT);
                    ready.clear();
                }
                FirstBatchHold::Until(at) if now < at => ready.clear(),
                FirstBatchHold::Until(_) => {}
            }
        }
        self.published_empty = ready.is_empty();
        let conn = |at: &usize| {
            self.entries[*at]
                .sub
                .as_ref()
                .and_then(|sub| sub.conn.as_ref())
        };
        let unchanged = ready.len() == current.len()
            && ready
                .iter()
                .zip(current)
                .all(|(at, held)| conn(at).is_some_and(|c| c.same(held)));
        let ready = (!unchanged).then(|| ready.iter().filter_map(conn).cloned().collect());
        PickState {
            ready,
            policy: self.policy,
            counts,
            service: self.service.clone(),
            last_connect_error: self.last_connect_error.clone(),
            active,
        }
    }

    /// The lowest priority with a ready connection, if any.
    fn active_priority(&self) -> Option<u32> {
        self.entries
            .iter()
            .filter(|entry| {
                entry.endpoint.health == EndpointHealth::Healthy
                    && entry.sub.as_ref().is_some_and(|sub| {
                        sub.state == ConnectionState::Ready && sub.conn.is_some()
                    })
            })
            .map(|entry| entry.endpoint.priority)
            .min()
    }

    /// Writes every endpoint for the application's view into `view`, in
    /// place (an unchanged row allocates nothing); `active` is the lowest
    /// priority with a ready connection. Returns whether `view` changed.
    pub(crate) fn write_view(&self, active: Option<u32>, view: &mut Vec<EndpointState>) -> bool {
        let mut changed = false;
        let mut rows = 0;
        for entry in &self.entries {
            let (connection, last_error) = match &entry.sub {
                Some(sub)
                    if sub.state == ConnectionState::Ready
                        && (Some(entry.endpoint.priority) != active
                            || entry.endpoint.health != EndpointHealth::Healthy) =>
                {
                    (ConnectionState::Standby, None)
                }
                Some(sub) => (sub.state, sub.error.as_ref()),
                None if self.closing.iter().any(|s| s.addr == entry.endpoint.addr) => {
                    (ConnectionState::Closing, None)
                }
                None => (ConnectionState::Idle, None),
            };
            let endpoint = &entry.endpoint;
            let row = Row {
                addr: endpoint.addr,
                hostname: &endpoint.hostname,
                zone: &endpoint.zone,
                priority: endpoint.priority,
                health: Some(endpoint.health),
                connection,
                last_error,
            };
            changed |= self.write_row(view, rows, &row);
            rows += 1;
        }
        for sub in &self.closing {
            let listed = self
                .entries
                .iter()
                .any(|e| e.endpoint.addr == sub.addr && e.sub.is_none());
            if !listed {
                let row = Row {
                    addr: sub.addr,
                    hostname: &sub.hostname,
                    zone: "",
                    priority: 0,
                    health: None,
                    connection: ConnectionState::Closing,
                    last_error: None,
                };
                changed |= self.write_row(view, rows, &row);
                rows += 1;
            }
        }
        if view.len() > rows {
            view.truncate(rows);
            changed = true;
        }
        changed
    }

    /// Makes `view[at]` say `row` (appending it at the end); whether it
    /// changed.
    fn write_row(&self, view: &mut Vec<EndpointState>, at: usize, row: &Row<'_>) -> bool {
        let Some(state) = view.get_mut(at) else {
            view.push(EndpointState {
                addr: row.addr,
                hostname: row.hostname.to_owned(),
                zone: row.zone.to_owned(),
                priority: row.priority,
                cluster: self.cluster.clone(),
                health: row.health,
                connection: row.connection,
                last_error: row.last_error.cloned(),
            });
            return true;
        };
        let mut changed = false;
        let mut set = |slot: &mut String, value: &str| {
            if slot != value {
                value.clone_into(slot);
                changed = true;
            }
        };
        set(&mut state.hostname, row.hostname);
        set(&mut state.zone, row.zone);
        set(&mut state.cluster, &self.cluster);
        if state.last_error.as_ref() != row.last_error {
            state.last_error = row.last_error.cloned();
            changed = true;
        }
        let fixed = (state.addr, state.priority, state.health, state.connection);
        if fixed != (row.addr, row.priority, row.health, row.connection) {
            state.addr = row.addr;
            state.priority = row.priority;
            state.health = row.health;
            state.connection = row.connection;
            changed = true;
        }
        changed
    }
}

/// One row of the view, borrowed from the reconciler's records.
struct Row<'a> {
    addr: SocketAddr,
    hostname: &'a str,
    zone: &'a str,
    priority: u32,
    health: Option<EndpointHealth>,
    connection: ConnectionState,
    last_error: Option<&'a String>,
}
