//! Which key means which [`Action`], the same in a live run and in replay.

use super::state::Action;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// The action a key press asks for; `None` for keys with no meaning and
/// for key releases and repeats reported by some terminals.
pub(super) fn action(key: KeyEvent) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(key.code, KeyCode::Char('c')).then_some(Action::Quit);
    }
    Some(match key.code {
        KeyCode::Char('q' | 'Q') => Action::Quit,
        KeyCode::Char('p' | ' ') => Action::TogglePause,
        KeyCode::Tab => Action::NextPanel,
        KeyCode::BackTab => Action::PrevPanel,
        KeyCode::Enter | KeyCode::Char('z') => Action::ToggleZoom,
        KeyCode::Esc => Action::Back,
        KeyCode::Char('?' | 'h') => Action::ToggleHelp,
        KeyCode::Left => Action::Step(-1),
        KeyCode::Right => Action::Step(1),
        KeyCode::Up => Action::Step(10),
        KeyCode::Down => Action::Step(-10),
        KeyCode::PageUp => Action::Step(-60),
        KeyCode::PageDown => Action::Step(60),
        KeyCode::Home => Action::ToStart,
        KeyCode::End => Action::ToEnd,
        KeyCode::Char('+' | '=') => Action::Faster,
        KeyCode::Char('-') => Action::Slower,
        _ => return None,
    })
}
