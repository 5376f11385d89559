//! The attach handshake between two real processes: the child receives working doorbells
//! (rung on one side, drained on the other, both directions), and each side's `peer_gone`
//! turns true once the other process exits.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{child_role, env_path, parent_watch, spawn_child, ChildProcess, TempPath};
use shmq::{
    attach, AttachListener, Attachment, Command, Doorbell, DoorbellSet, Event, MediaId, Segment,
    SessionId,
};

const SEGMENT_ENV: &str = "SHMQ_TEST_SEGMENT";
const SOCKET_ENV: &str = "SHMQ_TEST_SOCKET";
const WORKERS: usize = 2;
const ROUNDS: u32 = 300;
const LIMIT: Duration = Duration::from_secs(60);

/// Blocks until one of `bells` is readable, `timeout` passes, or the attachment's peer hangs
/// up; returns the indices of the bells that are readable (empty on timeout or hang-up).
fn wait_any(bells: &[Doorbell], attachment: &Attachment, timeout: Duration) -> Vec<usize> {
    let mut pollfds: Vec<libc::pollfd> = bells
        .iter()
        .map(Doorbell::as_raw_fd)
        .chain([attachment.as_raw_fd()])
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ready = unsafe {
        libc::poll(
            pollfds.as_mut_ptr(),
            pollfds.len() as libc::nfds_t,
            timeout.as_millis() as libc::c_int,
        )
    };
    assert!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
    pollfds
        .iter()
        .take(bells.len())
        .enumerate()
        .filter(|(_, pollfd)| pollfd.revents & libc::POLLIN != 0)
        .map(|(index, _)| index)
        .collect()
}

/// Parent side: waits for event doorbells; if none rings, the child has failed or hung, so
/// report its output.
fn wait_for_events(
    bells: &[Doorbell],
    attachment: &Attachment,
    child: &mut Option<ChildProcess>,
) -> Vec<usize> {
    let ready = wait_any(bells, attachment, LIMIT);
    if ready.is_empty() {
        if let Some(child) = child.take() {
            child.wait_success(Duration::from_secs(5));
        }
        panic!(
            "no event doorbell rang (peer gone: {})",
            attachment.peer_gone()
        );
    }
    ready
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn assert_is_eventfd(bell: &Doorbell) {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", bell.as_raw_fd())).unwrap();
    assert_eq!(link.to_string_lossy(), "anon_inode:[eventfd]");
}

/// Media role: serve commands woken by doorbells until a CloseSession arrives.
fn media_child(segment_path: &Path, socket: &Path) {
    let segment = Segment::open(segment_path).unwrap();
    let (bells, attachment) = attach(socket, &segment).unwrap();
    assert_eq!(bells.commands.len(), WORKERS);
    assert_eq!(bells.events.len(), WORKERS);
    bells
        .commands
        .iter()
        .chain(&bells.events)
        .for_each(assert_is_eventfd);
    let mut commands: Vec<_> = (0..WORKERS)
        .map(|w| segment.command_consumer(w).unwrap())
        .collect();
    let mut events: Vec<_> = (0..WORKERS)
        .map(|w| segment.event_producer(w).unwrap())
        .collect();
    let mut parent_alive = parent_watch();
    let mut served = 0u32;
    loop {
        assert!(parent_alive(), "parent exited");
        assert!(!attachment.peer_gone(), "control went away mid-test");
        for worker in wait_any(&bells.commands, &attachment, Duration::from_millis(500)) {
            assert!(bells.commands[worker].drain() >= 1);
            while let Some(record) = commands[worker].pop() {
                let reply = match Command::decode(&record).unwrap() {
                    Command::Play {
                        session, play_id, ..
                    } => {
                        assert_eq!(worker as u32, play_id % WORKERS as u32);
                        served += 1;
                        Event::PlayDone {
                            session,
                            play_id,
                            interrupted: false,
                        }
                    }
                    Command::CloseSession { session } => Event::SessionClosed {
                        session,
                        packets_sent: u64::from(served),
                        packets_received: 0,
                    },
                    other => panic!("unexpected command {other:?}"),
                };
                events[worker].push(&reply.encode()).unwrap();
                bells.events[worker].ring();
                if matches!(reply, Event::SessionClosed { .. }) {
                    assert_eq!(served, ROUNDS);
                    return; // exiting closes our end of the attachment
                }
            }
        }
    }
}

#[test]
fn attach_in_a_child_process_gets_working_doorbells() {
    if let Some(role) = child_role() {
        assert_eq!(role, "media");
        media_child(&env_path(SEGMENT_ENV), &env_path(SOCKET_ENV));
        return;
    }

    let segment_path = TempPath::new("attach-seg");
    let socket = TempPath::new("attach-sock");
    let segment = Segment::create(&segment_path, WORKERS, 16).unwrap();
    let bells = DoorbellSet::new(WORKERS).unwrap();
    let listener = AttachListener::bind(&socket).unwrap();
    let mut child = Some(spawn_child(
        "attach_in_a_child_process_gets_working_doorbells",
        "media",
        &[
            (SEGMENT_ENV, segment_path.as_os_str()),
            (SOCKET_ENV, socket.as_os_str()),
        ],
    ));
    let attachment = listener.accept(&segment, &bells, LIMIT).unwrap();
    assert_eq!(
        Some(attachment.peer_pid()),
        child.as_ref().map(ChildProcess::id)
    );
    assert!(!attachment.peer_gone());

    let mut commands: Vec<_> = (0..WORKERS)
        .map(|w| segment.command_producer(w).unwrap())
        .collect();
    let mut events: Vec<_> = (0..WORKERS)
        .map(|w| segment.event_consumer(w).unwrap())
        .collect();
    for play_id in 0..ROUNDS {
        let worker = (play_id % WORKERS as u32) as usize;
        let other = 1 - worker;
        let session = SessionId(1000 + u64::from(play_id));
        let play = Command::Play {
            session,
            play_id,
            media: MediaId([play_id as u8; 32]),
            loops: 1,
        };
        commands[worker].push(&play.encode()).unwrap();
        bells.commands[worker].ring();

        // The reply must arrive on this worker's event ring, announced by its doorbell only.
        let ready = wait_for_events(&bells.events, &attachment, &mut child);
        assert_eq!(ready, vec![worker], "round {play_id}");
        assert_eq!(bells.events[worker].drain(), 1);
        assert_eq!(bells.events[other].drain(), 0);
        let reply = Event::decode(&events[worker].pop().unwrap()).unwrap();
        assert_eq!(
            reply,
            Event::PlayDone {
                session,
                play_id,
                interrupted: false
            }
        );
        assert_eq!(events[worker].pop(), None);
        assert!(!attachment.peer_gone());
    }

    commands[0]
        .push(
            &Command::CloseSession {
                session: SessionId(1),
            }
            .encode(),
        )
        .unwrap();
    bells.commands[0].ring();
    assert_eq!(
        wait_for_events(&bells.events, &attachment, &mut child),
        vec![0]
    );
    bells.events[0].drain();
    assert_eq!(
        Event::decode(&events[0].pop().unwrap()).unwrap(),
        Event::SessionClosed {
            session: SessionId(1),
            packets_sent: u64::from(ROUNDS),
            packets_received: 0
        }
    );

    child.take().unwrap().wait_success(LIMIT);
    wait_until("peer_gone after the media child exited", || {
        attachment.peer_gone()
    });
}

/// Control role: open the segment the parent made, hand out doorbells, wait for the parent
/// to ring command doorbell 1, ring event doorbell 1 back, then exit.
fn control_child(segment_path: &Path, socket: &Path) {
    let segment = Segment::open(segment_path).unwrap();
    let bells = DoorbellSet::new(segment.workers()).unwrap();
    let listener = AttachListener::bind(socket).unwrap();
    let attachment = listener.accept(&segment, &bells, LIMIT).unwrap();
    assert_eq!(attachment.peer_pid(), std::os::unix::process::parent_id());
    assert!(
        bells.commands[1].wait(Some(LIMIT)).unwrap(),
        "parent never rang"
    );
    assert_eq!(bells.commands[1].drain(), 1);
    assert_eq!(bells.commands[0].drain(), 0);
    bells.events[1].ring();
}

#[test]
fn media_side_sees_peer_gone_when_the_control_process_exits() {
    if let Some(role) = child_role() {
        assert_eq!(role, "control");
        control_child(&env_path(SEGMENT_ENV), &env_path(SOCKET_ENV));
        return;
    }

    let segment_path = TempPath::new("gone-seg");
    let socket = TempPath::new("gone-sock");
    let segment = Segment::create(&segment_path, WORKERS, 8).unwrap();
    let mut child = spawn_child(
        "media_side_sees_peer_gone_when_the_control_process_exits",
        "control",
        &[
            (SEGMENT_ENV, segment_path.as_os_str()),
            (SOCKET_ENV, socket.as_os_str()),
        ],
    );
    // The child binds the socket when it gets there; retry until it listens.
    let mut attached = None;
    wait_until("the control child to listen", || {
        assert!(child.is_running(), "control child exited early");
        match attach(&socket, &segment) {
            Ok(pair) => {
                attached = Some(pair);
                true
            }
            Err(shmq::ShmqError::Io(_)) => false,
            Err(other) => panic!("attach failed: {other}"),
        }
    });
    let (bells, attachment) = attached.unwrap();
    assert_eq!(attachment.peer_pid(), child.id());
    assert!(!attachment.peer_gone());

    bells.commands[1].ring();
    let mut child = Some(child);
    assert_eq!(
        wait_for_events(&bells.events, &attachment, &mut child),
        vec![1]
    );
    assert_eq!(bells.events[1].drain(), 1);

    child.take().unwrap().wait_success(LIMIT);
    wait_until("peer_gone after the control child exited", || {
        attachment.peer_gone()
    });
    // Still true on every later call.
    assert!(attachment.peer_gone());
}
