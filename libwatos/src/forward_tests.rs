//! A forward's window from its first use: mapped once, and a window that cannot be mapped refuses
//! the forward (the caller then bounces through its own memory) and is tried again next time.

use super::*;

#[test]
fn a_window_that_cannot_be_mapped_refuses_the_forward_and_is_tried_again() {
    let mut s = State::default();
    let live = Live { client: 3, index: 1, offset: 8, len: 100, rights: LEASE_READ };
    let before = counts().1;
    assert_eq!(start_in(&mut s, live, |_| None), Err(Error::NotSupported), "no memory for the window");
    assert_eq!(start_in(&mut s, live, |_| Some(0)), Err(Error::NotSupported), "address 0 is no window");
    assert!(s.base == 0 && s.live.is_none(), "nothing recorded: {s:?}");
    assert!(counts().1 >= before + 2, "both refusals counted");
    assert_eq!(start_in(&mut s, live, |n| Some(n * 4)), Ok((WINDOW * 4, 100)), "mapped at the next forward");
    assert_eq!(s.live, Some(live));
    assert_eq!(start_in(&mut s, Live { len: 5, ..live }, |_| panic!("mapped once")), Ok((WINDOW * 4, 5)));
}
