/*  =========================================================================
    feed - the live change feed: every committed change to every subscriber
    that may see it, in sequence order, exactly once

    Owns:      the subscribers, their cursors and filters, the cache of recent
               change-log entries, heartbeats, and change-log retention.
    Must not:  decide who may see what (authz.c does) or write records.

    Why a cursor per subscriber (the Clone pattern, done by the server): a
    subscriber is a connection that sent a WATCH request. The server keeps the
    last sequence number it has considered for it and sends every later
    committed change it may see, reading the change log where the cache does
    not reach. A subscriber whose pipe is full (ROUTER_MANDATORY says EAGAIN)
    simply waits: its cursor stays put, nobody else waits for it, and it is
    caught up from the log when it drains - so nothing is lost, duplicated or
    reordered. Only if the log was trimmed past its cursor is it told so
    (OUT_OF_RANGE) and dropped. Events are sent with reply id 0 and are
    packed once per visibility variant (clear / masked), not per subscriber.
    =========================================================================
*/
#ifndef FEED_H
#define FEED_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm.pb-c.h"
#include "store.h"

typedef struct {
    uint64_t retain_events; /* change-log entries kept (0 = all) */
    int64_t retain_ms;      /* age of entries kept (0 = forever) */
    uint64_t ring_events;   /* recent changes kept decoded (0 = 8,192; at least 1,024,
                               feed.c's RING_MIN): a subscriber further behind is
                               replayed from the log */
    int64_t pump_us;        /* a pump's time on the server thread (0 = 2 ms): the
                               subscribers it did not reach go first next time */
} feed_config_t;

typedef struct feed feed_t;

feed_t *feed_new(store_t *store, const feed_config_t *cfg);
void feed_destroy(feed_t **self_p);
/* Subscribe the peer RID (routing id) as USER_ID (Z85 key) / USER per W, the
   WATCH request REQ_ID. Returns an error (and text) for a bad request;
   *cursor gets the sequence number delivery starts after. Nothing is
   delivered before feed_replied() for this RID and REQ_ID. */
crm_err_t feed_watch(feed_t *self, const void *rid, size_t rid_len, uint64_t req_id,
                     const char *user_id, const Crm__User *user, const Crm__WatchRequest *w,
                     uint64_t *cursor, char *errbuf);
/* The answer to the WATCH request REQ_ID of the peer RID went out (OK is
   false if it is an error or could not be sent). Its events may follow now;
   after an error (its audit entry was not committed, say) the watch is
   dropped: a client told its WATCH failed gets no events. */
void feed_replied(feed_t *self, const void *rid, size_t rid_len, uint64_t req_id, bool ok);
/* Changes up to the store's last sequence number, and no further than UPTO,
   are committed (at NOW_US): those past UPTO are taken in by a later call. */
void feed_committed(feed_t *self, int64_t now_us, uint64_t upto);
/* Send what is due on ROUTER: events, progress markers, revocations - for
   at most cfg.pump_us (a subscriber replaying from the log cost 11-16 ms a
   pump before), each subscriber reached getting at least one event. */
void feed_pump(feed_t *self, void *router, int64_t now_us);
/* True if some subscriber still has events to receive (poll sooner). */
bool feed_behind(const feed_t *self);
/* True if the last pump stopped on its time with work left (poll without waiting). */
bool feed_cut(const feed_t *self);
/* Drop every subscriber (their connections are gone). */
void feed_reset(feed_t *self);
/* Apply retention to the change log. */
void feed_trim(feed_t *self);
size_t feed_subscribers(const feed_t *self);

/* A change decoded ahead, off the server thread: feed_decode() on any thread
   (it only reads STORE: the committed change SEQ, its records, their
   parents), then feed_adopt() on the server thread, before the turn's
   feed_committed(), takes it into the cache so that no pump decodes it again
   (a large change: 4,900 records took 6-11 ms to decode). */
typedef struct feed_event feed_event_t;
feed_event_t *feed_decode(store_t *store, uint64_t seq);
void feed_adopt(feed_t *self, feed_event_t **ev_p);
void feed_event_free(feed_event_t **ev_p);

#endif
