//! Applying an endpoint list: when it lists the same addresses in the same
//! order, only the endpoints that differ are touched; otherwise entries are
//! matched by address. Subchannels are started for HEALTHY endpoints and
//! retired for DRAINING and removed ones; a not-ready endpoint keeps its
//! connection while it stays connected (see [`Reconciler::on_resolution`]).

use super::*;

impl<C: Clone + Same> Reconciler<C> {
    /// Brings the entries to `endpoints`; returns what the manager must do.
    pub(super) fn reconcile(&mut self, endpoints: &[Endpoint]) -> Vec<Command<C>> {
        let same_addresses = endpoints.len() == self.entries.len()
            && endpoints
                .iter()
                .zip(&self.entries)
                .all(|(endpoint, entry)| endpoint.addr == entry.endpoint.addr);
        if !same_addresses {
            return self.reconcile_all(endpoints);
        }
        // The same endpoints in the same order: only those that differ.
        let mut commands = Vec::new();
        let mut entries = std::mem::take(&mut self.entries);
        for (entry, endpoint) in entries.iter_mut().zip(endpoints) {
            if entry.endpoint != *endpoint || !settled(endpoint.health, entry.sub.as_ref()) {
                self.update(entry, endpoint, &mut commands);
            }
        }
        self.entries = entries;
        commands
    }

    /// Brings `entry` (at `endpoint`'s address) to what `endpoint` says.
    fn update(
        &mut self,
        entry: &mut Entry<C>,
        endpoint: &Endpoint,
        commands: &mut Vec<Command<C>>,
    ) {
        self.dirty = true;
        if entry.endpoint.hostname != endpoint.hostname {
            // Another instance behind the same address: a new connection.
            if let Some(sub) = entry.sub.take() {
                commands.push(self.retire(sub));
            }
        }
        if entry.endpoint.health != endpoint.health {
            tracing::info!(target = %self.target, endpoint = %endpoint.label(), health = ?endpoint.health, "endpoint health changed");
        }
        entry.endpoint.clone_from(endpoint);
        match (endpoint.health, entry.sub.is_some()) {
            (EndpointHealth::Healthy, false) => {
                let (sub, command) = self.start(endpoint);
                entry.sub = Some(sub);
                commands.push(command);
            }
            (EndpointHealth::Draining, true) => {
                if let Some(sub) = entry.sub.take() {
                    commands.push(self.retire(sub));
                }
            }
            // Kept while connected: no calls (the picker takes HEALTHY
            // endpoints only), and ready again at once if it comes back.
            (EndpointHealth::NotReady, true) if !settled(endpoint.health, entry.sub.as_ref()) => {
                if let Some(sub) = entry.sub.take() {
                    commands.push(self.retire(sub));
                }
            }
            _ => {}
        }
    }

    /// Endpoints added, removed or reordered: matched by address.
    fn reconcile_all(&mut self, endpoints: &[Endpoint]) -> Vec<Command<C>> {
        self.dirty = true;
        let mut commands = Vec::new();
        let mut old: HashMap<SocketAddr, Entry<C>> = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|entry| (entry.endpoint.addr, entry))
            .collect();
        let mut entries = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let mut entry = old.remove(&endpoint.addr).unwrap_or_else(|| {
                tracing::info!(target = %self.target, endpoint = %endpoint.label(), health = ?endpoint.health, "endpoint added");
                Entry {
                    endpoint: endpoint.clone(),
                    sub: None,
                }
            });
            self.update(&mut entry, endpoint, &mut commands);
            entries.push(entry);
        }
        for (_, entry) in old {
            tracing::info!(target = %self.target, endpoint = %entry.endpoint.label(), "endpoint removed");
            if let Some(sub) = entry.sub {
                commands.push(self.retire(sub));
            }
        }
        self.entries = entries;
        commands
    }

    /// A not-ready endpoint's kept subchannel that lost its connection (or
    /// never had one) is retired: nothing reconnects to a not-ready
    /// endpoint. Returns the command, if any.
    pub(super) fn retire_if_unwanted(&mut self, at: usize) -> Option<Command<C>> {
        let entry = &mut self.entries[at];
        if settled(entry.endpoint.health, entry.sub.as_ref()) {
            return None;
        }
        let sub = entry.sub.take()?;
        tracing::debug!(target = %self.target, endpoint = %entry.endpoint.label(), "the kept connection to a not-ready endpoint is gone; not reconnecting");
        Some(self.retire(sub))
    }

    fn start(&mut self, endpoint: &Endpoint) -> (Sub<C>, Command<C>) {
        self.next_id += 1;
        let hostname: Arc<str> = endpoint.hostname.as_str().into();
        let spec = Spec {
            id: self.next_id,
            addr: endpoint.addr,
            hostname: hostname.clone(),
            tls: self.tls.clone(),
        };
        let sub = Sub {
            id: self.next_id,
            addr: endpoint.addr,
            hostname,
            state: ConnectionState::Connecting,
            conn: None,
            error: None,
            attempted: false,
        };
        (sub, Command::Start(spec))
    }

    fn retire(&mut self, mut sub: Sub<C>) -> Command<C> {
        let command = Command::Retire {
            id: sub.id,
            conn: sub.conn.take(),
        };
        sub.state = ConnectionState::Closing;
        self.closing.push(sub);
        command
    }
}

/// Whether an endpoint with `health` and `sub` needs nothing done: a HEALTHY
/// one has a subchannel, a DRAINING one none, a not-ready one none or a
/// connected one.
fn settled<C>(health: EndpointHealth, sub: Option<&Sub<C>>) -> bool {
    match health {
        EndpointHealth::Healthy => sub.is_some(),
        EndpointHealth::Draining => sub.is_none(),
        EndpointHealth::NotReady => sub.is_none_or(|sub| sub.conn.is_some()),
    }
}
