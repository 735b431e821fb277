-- The contact centre: what happened to each call handed to an agent queue, and callbacks.

-- One row per call per queue it was sent to. The app writes the first half when it transfers
-- (queue, the position and wait it announced, Asterisk's own holdtime estimate for comparison);
-- the AMI queue tracker completes it from app_queue's events (joined, answered by which agent,
-- waited, talked, or abandoned). call_id is the caller's channel id (the journey's call_id).
CREATE TABLE queue_legs (
    call_id            text NOT NULL,
    queue              text NOT NULL,
    announced_position integer,
    announced_wait_s   integer,
    asterisk_wait_s    integer,
    joined_at          timestamptz,
    answered_at        timestamptz,
    ended_at           timestamptz,
    wait_s             integer,
    agent              text,
    talk_s             integer,
    result             text CHECK (result IN ('waiting', 'answered', 'completed', 'abandoned', 'timeout',
                                              'callback', 'failed')),
    PRIMARY KEY (call_id, queue)
);
CREATE INDEX queue_legs_joined ON queue_legs (joined_at);
CREATE INDEX queue_legs_agent ON queue_legs (agent, answered_at);

-- A caller who chose to be called back instead of waiting. The placeholder waits in the queue in
-- the caller's place; when an agent takes it, the customer is dialled and bridged to that agent.
-- number is where to call back (normalised, digits only); never a number typed in the IVR unless
-- it is the customer's registered number.
CREATE TABLE callbacks (
    callback_id  bigserial PRIMARY KEY,
    call_id      text NOT NULL,
    customer_id  text,
    number       text NOT NULL,
    queue        text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'waiting'
                 CHECK (status IN ('waiting', 'queued', 'dialling', 'connected', 'completed',
                                   'no_answer', 'busy', 'failed', 'cancelled')),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    agent        text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    detail       text NOT NULL DEFAULT '',
    -- When a waiting callback may be placed in its queue (now when booked, later after a failed
    -- attempt), and how many placeholders were placed so far: the attempt's channel ids carry it,
    -- so they never repeat (a placeholder lost with a dead server is placed again, not counted).
    due_at       timestamptz NOT NULL DEFAULT now(),
    placements   integer NOT NULL DEFAULT 0 CHECK (placements >= 0)
);
CREATE INDEX callbacks_open ON callbacks (status, due_at, callback_id)
    WHERE status IN ('waiting', 'queued', 'dialling', 'connected');
