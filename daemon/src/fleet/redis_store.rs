//! The Redis (or Valkey) [`SharedStore`], through the `redis` crate: one multiplexed connection,
//! made on first use and made again after any failure (through Sentinel, that asks the
//! sentinels for the current primary: a failover is followed), every operation within the fleet
//! timeout, the fenced writes as Lua scripts (atomic on the server), and one subscriber
//! connection that turns commit notifications into wake-ups.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::sync::{Mutex, broadcast};

use super::address::Address;
use super::store::{
    Commit, Committed, Invalidated, Keys, SharedStore, Snapshot, StoreError, StoreFuture,
};

/// The commit: only the lock holder (if an owner is given), only over the generation it read.
/// KEYS: lock, gen, access, refresh. ARGV: owner ("" = no lock), expected generation, access
/// value ("" = keep), access TTL in ms (0 = no expiry), refresh value ("" = keep), channel.
const COMMIT: &str = r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current ~= tonumber(ARGV[2]) then return -2 end
local generation = current + 1
redis.call('SET', KEYS[2], generation)
if ARGV[3] ~= '' then
  if tonumber(ARGV[4]) > 0 then
    redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
  else
    redis.call('SET', KEYS[3], ARGV[3])
  end
end
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], ARGV[5]) end
if ARGV[1] ~= '' then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[6], generation)
return 1
";

/// KEYS: lock. ARGV: owner.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// KEYS: access, inval. ARGV: token hash, interval in ms.
const INVALIDATE: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local hash = string.match(value, '^%d+:(%x+):')
if hash ~= ARGV[1] then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return -1 end
redis.call('DEL', KEYS[1])
return 1
";

/// How the data server is reached.
enum Connector {
    Server(Client),
    Sentinel(Mutex<redis::sentinel::SentinelClient>),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Server(_) => "Connector::Server",
            Self::Sentinel(_) => "Connector::Sentinel",
        })
    }
}

/// The Redis store of one fleet.
pub(crate) struct RedisStore {
    connector: Arc<Connector>,
    connection: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
    commit: Script,
    unlock: Script,
    invalidate: Script,
    changes: broadcast::Sender<String>,
    subscriber: tokio::task::AbortHandle,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// What a connection needs besides the address.
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// PEM of the CA for TLS with a private CA.
    pub(crate) ca: Option<Vec<u8>>,
}

impl RedisStore {
    /// A store for `address` (nothing is connected yet: the first operation connects), with a
    /// subscriber for the commit notifications of `namespace`. Must run inside a tokio runtime.
    pub(crate) fn new(
        address: &Address,
        credentials: &Credentials,
        namespace: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let connector = Arc::new(connector(address, credentials)?);
        let (changes, _) = broadcast::channel(64);
        let subscriber = tokio::spawn(subscribe(
            Arc::clone(&connector),
            format!("tokend:{namespace}:*:done"),
            changes.clone(),
            timeout,
        ))
        .abort_handle();
        Ok(Self {
            connector,
            connection: Mutex::new(None),
            timeout,
            commit: Script::new(COMMIT),
            unlock: Script::new(UNLOCK),
            invalidate: Script::new(INVALIDATE),
            changes,
            subscriber,
        })
    }

    /// The connection, made if there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let made = tokio::time::timeout(self.timeout, connect(&self.connector, self.timeout))
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
            .map_err(|err| StoreError::Unavailable(described(&err)))?;
        *slot = Some(made.clone());
        Ok(made)
    }

    /// Runs `op` within the timeout; a failed connection is dropped, so the next operation
    /// connects again (through Sentinel: to whichever server is the primary now).
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection().await?;
        let outcome = tokio::time::timeout(self.timeout, op(connection)).await;
        let failure = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => StoreError::Unavailable(described(&err)),
            Err(_) => StoreError::Timeout(self.timeout),
        };
        *self.connection.lock().await = None;
        Err(failure)
    }
}

/// GET access, PTTL access, GET refresh, GET gen.
type ReadReply = (Option<Vec<u8>>, i64, Option<Vec<u8>>, Option<u64>);

impl SharedStore for RedisStore {
    fn read<'a>(&'a self, keys: &'a Keys) -> StoreFuture<'a, Snapshot> {
        Box::pin(async move {
            let (access, ttl, refresh, generation): ReadReply = self
                .run(|mut con| async move {
                    redis::pipe()
                        .get(keys.access())
                        .pttl(keys.access())
                        .get(keys.refresh())
                        .get(keys.generation())
                        .query_async(&mut con)
                        .await
                })
                .await?;
            let access = match (access, ttl) {
                // -1: no expiry; -2: gone between the two commands.
                (Some(value), -1) => Some((value, None)),
                (Some(value), ms) if ms > 0 => {
                    Some((value, Some(Duration::from_millis(ms.unsigned_abs()))))
                }
                _ => None,
            };
            Ok(Snapshot {
                access,
                refresh,
                generation: generation.unwrap_or(0),
            })
        })
    }

    fn lock<'a>(&'a self, keys: &'a Keys, owner: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let taken: Option<String> = self
                .run(|mut con| async move {
                    redis::cmd("SET")
                        .arg(keys.lock())
                        .arg(owner)
                        .arg("NX")
                        .arg("PX")
                        .arg(ms)
                        .query_async(&mut con)
                        .await
                })
                .await?;
            Ok(taken.is_some())
        })
    }

    fn unlock<'a>(&'a self, keys: &'a Keys, owner: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _: i64 = self
                .run(|mut con| async move {
                    self.unlock
                        .key(keys.lock())
                        .arg(owner)
                        .invoke_async(&mut con)
                        .await
                })
                .await?;
            Ok(())
        })
    }

    fn commit<'a>(&'a self, keys: &'a Keys, commit: Commit<'a>) -> StoreFuture<'a, Committed> {
        Box::pin(async move {
            let (access, access_ms) = match &commit.access {
                Some((value, ttl)) => (
                    value.as_slice(),
                    ttl.map_or(0, |ttl| {
                        u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
                    }),
                ),
                None => (&b""[..], 0),
            };
            let refresh = commit.refresh.as_deref().unwrap_or_default();
            let result: i64 = self
                .run(|mut con| async move {
                    self.commit
                        .key(keys.lock())
                        .key(keys.generation())
                        .key(keys.access())
                        .key(keys.refresh())
                        .arg(commit.owner.unwrap_or_default())
                        .arg(commit.expected)
                        .arg(access)
                        .arg(access_ms)
                        .arg(refresh)
                        .arg(keys.done())
                        .invoke_async(&mut con)
                        .await
                })
                .await?;
            Ok(match result {
                1 => Committed::Yes,
                -1 => Committed::LockLost,
                _ => Committed::Conflict,
            })
        })
    }

    fn invalidate<'a>(
        &'a self,
        keys: &'a Keys,
        hash: &'a str,
        interval: Duration,
    ) -> StoreFuture<'a, Invalidated> {
        Box::pin(async move {
            let ms = u64::try_from(interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let result: i64 = self
                .run(|mut con| async move {
                    self.invalidate
                        .key(keys.access())
                        .key(keys.invalidation())
                        .arg(hash)
                        .arg(ms)
                        .invoke_async(&mut con)
                        .await
                })
                .await?;
            Ok(match result {
                1 => Invalidated::Dropped,
                -1 => Invalidated::RateLimited,
                _ => Invalidated::Other,
            })
        })
    }

    fn changed<'a>(
        &'a self,
        keys: &'a Keys,
        max: Duration,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let mut changes = self.changes.subscribe();
        let channel = keys.done();
        Box::pin(async move {
            let wait = async {
                loop {
                    match changes.recv().await {
                        Ok(changed) if changed == channel => return,
                        Ok(_) => {}
                        // Missed some: one of them may have been ours.
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(max, wait).await;
        })
    }
}

fn connector(address: &Address, credentials: &Credentials) -> Result<Connector, String> {
    match address {
        Address::Server(url) => {
            let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
                .map_err(|err| described(&err))?;
            let mut settings = info.redis_settings().clone();
            if let Some(username) = &credentials.username {
                settings = settings.set_username(username);
            }
            if let Some(password) = &credentials.password {
                settings = settings.set_password(password);
            }
            let info = info.set_redis_settings(settings);
            let client = match &credentials.ca {
                Some(ca) => Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.clone()),
                    },
                ),
                None => Client::open(info),
            }
            .map_err(|err| described(&err))?;
            Ok(Connector::Server(client))
        }
        Address::Sentinel {
            nodes,
            master,
            db,
            tls,
        } => {
            let sentinels = nodes
                .iter()
                .map(|(host, port)| redis::ConnectionAddr::Tcp(host.clone(), *port));
            let mut builder = redis::sentinel::SentinelClientBuilder::new(
                sentinels,
                master,
                redis::sentinel::SentinelServerType::Master,
            )
            .map_err(|err| described(&err))?
            .set_client_to_redis_db(*db);
            if *tls {
                builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
                if let Some(ca) = &credentials.ca {
                    builder = builder.set_client_to_redis_certificates(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.clone()),
                    });
                }
            }
            if let Some(username) = &credentials.username {
                builder = builder.set_client_to_redis_username(username);
            }
            if let Some(password) = &credentials.password {
                builder = builder.set_client_to_redis_password(password);
            }
            let client = builder.build().map_err(|err| described(&err))?;
            Ok(Connector::Sentinel(Mutex::new(client)))
        }
    }
}

/// The client of the data server now (through Sentinel: the current primary).
async fn client(connector: &Connector) -> redis::RedisResult<Client> {
    match connector {
        Connector::Server(client) => Ok(client.clone()),
        Connector::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
    }
}

async fn connect(
    connector: &Connector,
    timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    client(connector)
        .await?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Forwards the commit notifications of the namespace to `changes`, reconnecting after a
/// failure (waiters poll meanwhile).
async fn subscribe(
    connector: Arc<Connector>,
    pattern: String,
    changes: broadcast::Sender<String>,
    timeout: Duration,
) {
    use futures_util::StreamExt as _;
    loop {
        let subscribed = async {
            let client = tokio::time::timeout(timeout, client(&connector))
                .await
                .ok()?
                .ok()?;
            let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
                .await
                .ok()?
                .ok()?;
            tokio::time::timeout(timeout, pubsub.psubscribe(&pattern))
                .await
                .ok()?
                .ok()?;
            Some(pubsub)
        }
        .await;
        if let Some(pubsub) = subscribed {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let _ = changes.send(message.get_channel_name().to_owned());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A redis error as one line that names no credential (redis-rs never prints passwords).
fn described(err: &redis::RedisError) -> String {
    err.to_string().replace('\n', " ")
}
