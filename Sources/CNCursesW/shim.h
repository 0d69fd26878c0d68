#ifndef WHITTLE_CNCURSESW_SHIM_H
#define WHITTLE_CNCURSESW_SHIM_H
// SwiftPM drops the feature macros from ncursesw.pc; ask for the wide API explicitly.
#define NCURSES_WIDECHAR 1
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include <locale.h>
#include <ncursesw/curses.h>

// Function-like macros are not imported into Swift; wrap the ones Whittle needs.
static inline int whittle_color_pair(int n) { return COLOR_PAIR(n); }
static inline attr_t whittle_a_bold(void) { return A_BOLD; }
static inline attr_t whittle_a_reverse(void) { return A_REVERSE; }
static inline attr_t whittle_a_underline(void) { return A_UNDERLINE; }
static inline attr_t whittle_a_dim(void) { return A_DIM; }
static inline WINDOW *whittle_stdscr(void) { return stdscr; }
static inline int whittle_lines(void) { return LINES; }
static inline int whittle_cols(void) { return COLS; }
static inline int whittle_colors(void) { return COLORS; }
static inline int whittle_color_pairs(void) { return COLOR_PAIRS; }
static inline WINDOW *whittle_curscr(void) { return curscr; }
// Mouse masks (function-like macros in curses.h).
static inline mmask_t whittle_button1_pressed(void) { return BUTTON1_PRESSED; }
static inline mmask_t whittle_button1_released(void) { return BUTTON1_RELEASED; }
static inline mmask_t whittle_button1_clicked(void) { return BUTTON1_CLICKED; }
static inline mmask_t whittle_button4_pressed(void) { return BUTTON4_PRESSED; }
static inline mmask_t whittle_button5_pressed(void) { return BUTTON5_PRESSED; }
static inline mmask_t whittle_report_mouse_position(void) { return REPORT_MOUSE_POSITION; }
static inline mmask_t whittle_all_mouse_events(void) { return ALL_MOUSE_EVENTS; }

#endif
