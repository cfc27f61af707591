# The remote half of `rexec shell` when the account's login shell is bash.
#
# rexec_client.shell.session sends this to one interactive bash that lives as
# long as the session (bash --noediting --norc --noprofile +o history -i, its
# stdin the session's command stream). Each line the user types arrives as
#
#   __rexec_pre SEQ MODE STDIN $'TEXT' && builtin eval "$__rexec_s_cmd" <"$__rexec_s_in"
#   __rexec_done SEQ NONCE
#
# so the text runs at the top level of this shell, where every change it makes
# (directory, variables, functions, aliases, options, traps, umask, anything
# sourced) stays for the next line, exactly as typed into bash over ssh. Its
# output goes to the shell's own stdout and stderr, untouched. What rexec needs
# back (the status, the directory, the state snapshot kept for a reconnect)
# goes as NUL-delimited records to $__rexec_s_ctl, the stdin pipe of a `cat`
# the client runs beside this shell: a channel of its own that the user's
# commands never write to.
#
# NONCE is a fresh random string the client sends after the line; bash reads
# it only once the line has ended, and then writes it to the session's stdout
# and stderr (on descriptors kept for that, even if the line redirected 1 or
# 2): when the client has seen it on both, it has all the line's output. It
# strips exactly that string, which no command of the line could have known.
#
# Between lines the shell sits at its own top level with the user's prompts,
# PROMPT_COMMAND and a few `set` flags put aside (kept in __rexec_u_*), so that
# nothing of rexec's framing is printed, traced or recorded in the history. The
# first line of each eval gives them back, with $? and $_ of the previous line;
# the last line (__rexec_tail) puts them aside again. When Ctrl-C cuts a line
# short, the tail never runs: bash goes back to its top level and runs
# PROMPT_COMMAND, which is __rexec_prompt, and that does the same; so does
# __rexec_done if the line replaced PROMPT_COMMAND too.
#
# Names: __rexec_s_* belong to this session (helper paths, the line running);
# __rexec_u_* are the user's, put aside, and are part of the state snapshot.

# The `set` flags put aside between lines: allexport, errexit, nounset,
# verbose, xtrace, errtrace, functrace would act on rexec's framing itself.
__rexec_s_flags=aeuvxET
# Whether the user's settings are in force (a new shell: its start-up files'
# are); __rexec_settings and __rexec_end switch between the two.
__rexec_s_live=1
# PROMPT_COMMAND while it is rexec's: after a line cut short by Ctrl-C it
# runs with the user's `set -x` still on, and bash traces each step on its
# stderr, here /dev/null, as it starts it (nothing of rexec's shows).
__rexec_s_hook='{ __rexec_prompt; } 2>/dev/null'

# Writes one record, in one write (nothing another writer puts in the pipe
# lands inside it), after the session's key (see __rexec_keep_key). The
# leading NUL ends whatever a record cut short by Ctrl-C left behind, so
# that a lost record never swallows the next one.
__rexec_send() {
    # (Not a word on the user's stderr when the channel is gone: the server
    # is ending the session, and the client says so.)
    __rexec_keyed "$1" '\0' 2>/dev/null >| "$__rexec_s_ctl"
}

# Keeps KEY, the session's key, where no command of the user's sees it: not
# in a variable (`set`, `declare -p` and the state snapshot would show it, a
# line's `echo` read it), nor a function's text (`set` and `declare -f` print
# those), nor BASH_ALIASES (a variable they list once it is read), nor the
# environment, a file or a descriptor (which any process of the account opens
# through /proc): in this shell's memory alone, in an alias that prints it
# (__rexec_keyed) and as the word list of a completion, which only `alias`
# and `complete`, typed in this shell by its owner, show (the snapshot's alias
# is dropped by the client, state.py).
__rexec_keep_key() {
    builtin alias __rexec_key="builtin printf '\\0%s %s%b' $1"
    builtin complete -W "$1" __rexec_key
}

# Prints NUL, the key, a space, TEXT and END (printf %b): the alias, expanded
# where eval reads it, without a fork or a variable.
__rexec_keyed() {
    __rexec_check_key
    if builtin shopt -q expand_aliases; then
        builtin eval '__rexec_key "$1" "$2"'
    else
        builtin shopt -s expand_aliases
        builtin eval '__rexec_key "$1" "$2"'
        builtin shopt -u expand_aliases
    fi
}

# Gives back whichever copy of the key a line removed (`unalias -a`, also a
# start-up file's, or `complete -r`; both in one line lose it) from the other.
__rexec_check_key() {
    if ! builtin alias __rexec_key >/dev/null 2>&1; then
        __rexec_keep_key "$(builtin complete -p __rexec_key 2>/dev/null | { IFS="'" builtin read -r _ k _ && builtin printf %s "$k"; })"
    elif ! builtin complete -p __rexec_key >/dev/null 2>&1; then
        __rexec_keep_key "$(builtin alias __rexec_key | { IFS=" '" builtin read -ra k && builtin printf %s "${k[-1]}"; })"
    fi
}

# Gives back, as the first line of each eval, what the user had: the status
# ($?) of the previous line (returned) and its last argument ($_, this call's
# last argument), and, when that status is not 0, the settings put aside (when
# it is 0, __rexec_settings does it, after the &&).
__rexec_resume() {
    if [ "$1" != 0 ]; then __rexec_settings "$2"; fi
    return "$1"
}

__rexec_settings() {
    __rexec_unstash PS1 "$__rexec_u_ps1"
    __rexec_unstash PS2 "$__rexec_u_ps2"
    __rexec_unstash PS0 "$__rexec_u_ps0"
    if [ "$__rexec_u_history" = 1 ]; then builtin set -o history; fi
    __rexec_s_live=1
    # Last (its status is the function's): under `set -x`, nothing of this
    # function is traced.
    if [ -n "$__rexec_u_flags" ]; then builtin set "-$__rexec_u_flags"; fi
}

# __rexec_stash NAME: the value of NAME as "=VALUE", or "" when it is unset.
__rexec_stash() {
    if [[ -v $1 ]]; then __rexec_s_value="=${!1}"; else __rexec_s_value=; fi
}

# __rexec_unstash NAME STASHED: undoes __rexec_stash.
__rexec_unstash() {
    if [ -n "$2" ]; then builtin printf -v "$1" '%s' "${2#=}"; else builtin unset -v "$1"; fi
}

# Starts a line: SEQ MODE STDIN TEXT. MODE is "run", "check" (run it only if
# it is complete; if not, say "more") or "force" (run it as it is: Ctrl-D on
# an unfinished line). STDIN is what the line reads. Returns non-zero when the
# line is not to run.
__rexec_pre() {
    if [ "$2" != run ] && ! __rexec_is_complete "$4"; then
        if [ "$2" = check ]; then
            __rexec_send "more $1"
            return 1
        fi
        if [[ $__rexec_s_value == *unexpected* ]]; then
            # Forced, and it can't run: say why in bash -n's words (this
            # shell's own parser, at its top level, adds stray bytes after
            # its message, in bash 5.2), with bash's status for it.
            builtin printf '%s\n' "$__rexec_s_value" >&2
            __rexec_s_status=2 __rexec_s_report=$1
            return 1
        fi
    fi
    __rexec_s_in=$3
    __rexec_s_running=$1
    builtin printf -v __rexec_s_value '%q' "$__rexec_u_underscore"
    __rexec_s_cmd="__rexec_resume $__rexec_s_status $__rexec_s_value 2>/dev/null"
    __rexec_s_cmd+=" && __rexec_settings $__rexec_s_value 2>/dev/null"$'\n'"$4"
    if [ "$2" != force ]; then
        # On a line of its own: the text may end in a comment. Not on the
        # forced run of an unfinished here-document, which would swallow it.
        __rexec_s_cmd+=$'\n''{ __rexec_tail "$?" "$_" "$@"; } 2>/dev/null'
    fi
    # set -v: bash echoes each line as it reads it, rexec's tail after the
    # text too. With -v on as the line starts (not on the forced run of an
    # unfinished here-document), the text is echoed here, once, as bash over
    # ssh echoes the typed line, and the whole eval is one group, read before
    # -v is back: nothing of it is echoed again. (The line that turns -v on
    # still echoes the tail once.)
    if [[ $__rexec_u_flags == *v* && $2 != force ]]; then
        builtin printf '%s\n' "$4" >&2
        __rexec_s_cmd="{ $__rexec_s_cmd"$'\n''}'
    fi
    # `set -o vi` (or emacs, or `+o`) in an interactive bash swaps the
    # shell's input for readline at once: inside the eval that runs a line,
    # the rest of the line is lost and bash dies (SIGSEGV, bash 5.2). Not in
    # a file that `.` runs, where bash is not interactive: a line that may
    # switch them (its text names vi or emacs after an o) runs as such a file,
    # a here-string on a spare descriptor (the same commands: `.` without
    # arguments keeps the shell's positional parameters). The option then
    # decides how rexec edits lines (the client reads it from the snapshot).
    case $4 in
        *o*vi* | *o*emacs*)
            __rexec_spare_fd
            __rexec_s_body=$__rexec_s_cmd
            __rexec_s_cmd="builtin . /dev/fd/$__rexec_s_setfd $__rexec_s_setfd<<<\"\$__rexec_s_body\""
            ;;
    esac
    # The history: bash keeps the text of the eval as it reads it (the
    # user's settings, `set -o history` among them, are back by then).
    return 0
}

# Sets __rexec_s_setfd to a descriptor this shell may open now: 4 below its
# soft limit of open files, at most 252. A line may have lowered the limit
# since the session began (`ulimit -n 100`), and bash can't open a descriptor
# at or above it. Read from /proc, without a fork or BASH_REMATCH (the user's).
__rexec_spare_fd() {
    local IFS=$' \t' # the user's may be anything: the limits line splits on blanks
    __rexec_s_value=256
    builtin mapfile -t __rexec_s_list </proc/$$/limits 2>/dev/null
    for __rexec_s_path in "${__rexec_s_list[@]}"; do
        case $__rexec_s_path in
            "Max open files "*)
                __rexec_s_list=(${__rexec_s_path#Max open files})
                if [[ ${__rexec_s_list[0]} == +([0-9]) ]] && ((__rexec_s_list[0] < 256)); then
                    __rexec_s_value=${__rexec_s_list[0]}
                fi
                break
                ;;
        esac
    done
    __rexec_s_setfd=$((__rexec_s_value - 4))
    builtin unset -v __rexec_s_list __rexec_s_path
}

# Whether TEXT is a complete command: bash -n, with the session's extglob
# (which changes what parses), says "unexpected end of file", "unexpected EOF"
# or "unexpected token `EOF'" (a conditional left open: `[[ a &&`), or warns of
# a here-document ended by the end of the text when it is not.
# What it said is left in __rexec_s_value.
__rexec_is_complete() {
    __rexec_s_value=$(
        if builtin shopt -q extglob; then __rexec_s_extglob=(-O extglob); else __rexec_s_extglob=(); fi
        LC_ALL=C LANGUAGE=C exec -a bash "$BASH" --norc --noprofile "${__rexec_s_extglob[@]}" -n 2>&1 <<<"$1"
    )
    case $__rexec_s_value in
        *"unexpected end of file"* | *"unexpected EOF"* | *"unexpected token \`EOF'"* | \
            *"delimited by end-of-file"*) return 1 ;;
    esac
    return 0
}

# The last line of each eval: STATUS UNDERSCORE ARGS... (the line's $?, $_
# and the shell's positional parameters).
__rexec_tail() {
    # The line that called this was put in the history as it was read (see
    # __rexec_pre): take it out.
    if [[ -o history ]]; then builtin history -d -1; fi
    __rexec_u_args=("${@:3}")
    __rexec_end "$1" "$2"
}

# A line has ended (STATUS UNDERSCORE): put the user's settings aside and
# mark the line for reporting.
__rexec_end() {
    __rexec_s_status=$1
    __rexec_u_underscore=$2
    __rexec_s_report=$__rexec_s_running
    __rexec_s_running=
    # Settings not in force (the line failed before they were given back,
    # e.g. its stdin could not be opened) are still the ones put aside.
    if [ -z "$__rexec_s_live" ]; then return 0; fi
    __rexec_s_live=
    __rexec_u_flags=${-//[^$__rexec_s_flags]/}
    if [ -n "$__rexec_u_flags" ]; then builtin set "+$__rexec_u_flags"; fi
    __rexec_stash PS1 && __rexec_u_ps1=$__rexec_s_value && PS1=
    __rexec_stash PS2 && __rexec_u_ps2=$__rexec_s_value && PS2=
    __rexec_stash PS0 && __rexec_u_ps0=$__rexec_s_value && PS0=
    if [[ -o history ]]; then __rexec_u_history=1; builtin set +o history; else __rexec_u_history=0; fi
    __rexec_keep_prompt_command
}

# If the line set PROMPT_COMMAND, take what it set (without this hook) as the
# user's and put the hook back.
__rexec_keep_prompt_command() {
    if [[ ${PROMPT_COMMAND@a} != *a* && ${PROMPT_COMMAND-} == "$__rexec_s_hook" ]]; then
        return 0
    fi
    __rexec_u_prompt_command=()
    for __rexec_s_value in "${PROMPT_COMMAND[@]}"; do
        __rexec_s_value=${__rexec_s_value//"$__rexec_s_hook"/}
        __rexec_s_value=${__rexec_s_value//__rexec_prompt/}
        # What was added after the hook (`PROMPT_COMMAND+="; cmd"`) starts
        # with a separator that eval would call a syntax error.
        __rexec_s_value=${__rexec_s_value#"${__rexec_s_value%%[!; $'\n']*}"}
        if [ -n "$__rexec_s_value" ]; then
            __rexec_u_prompt_command+=("$__rexec_s_value")
        fi
    done
    builtin unset -v PROMPT_COMMAND
    PROMPT_COMMAND=$__rexec_s_hook
}

# PROMPT_COMMAND: bash runs it each time it is back at its top level.
__rexec_prompt() {
    __rexec_s_value=$?
    # Its stderr is /dev/null (__rexec_s_hook): the user's PROMPT_COMMAND's
    # goes to the session's.
    __rexec_s_user_err=$__rexec_s_err
    __rexec_finish "$__rexec_s_value"
    __rexec_s_user_err=2
}

# The second line of each line the user typed: SEQ NONCE (see the top).
__rexec_done() {
    __rexec_s_value=$?
    if [ -n "$__rexec_s_running" ]; then
        # Cut short by Ctrl-C, and bash ran no PROMPT_COMMAND (it runs none
        # while vi or emacs is on): the user's `set -x` is still in force.
        __rexec_s_user_err=$__rexec_s_err
        { __rexec_finish "$__rexec_s_value" "$2"; } 2>/dev/null
        __rexec_s_user_err=2
        return
    fi
    __rexec_finish "$__rexec_s_value" "$2"
}

# What is left to do at the top level (STATUS [NONCE]): end a line cut short
# (Ctrl-C: the tail did not run), report it, write the output markers, send
# the state snapshot. Each step clears its mark only when done, so a Ctrl-C
# in the middle leaves the rest to the next PROMPT_COMMAND.
__rexec_finish() {
    if [ -n "$__rexec_s_running" ]; then __rexec_end "$1" "$__rexec_u_underscore"; fi
    if [ -n "$2" ]; then __rexec_s_nonce=$2; fi
    if [ -n "$__rexec_s_report" ]; then __rexec_report; fi
    if [ -n "$__rexec_s_nonce" ]; then
        if [ -n "$__rexec_s_outfd" ]; then builtin printf '\0%s' "$__rexec_s_nonce" >&"$__rexec_s_outfd"; fi
        if [ -n "$__rexec_s_errfd" ]; then builtin printf '\0%s' "$__rexec_s_nonce" >&"$__rexec_s_errfd"; fi
        __rexec_s_nonce=
        if [ -n "$__rexec_s_snapshot" ]; then
            __rexec_snapshot "$__rexec_s_snapshot"
            __rexec_s_snapshot=
        fi
    fi
}

# Where the end of the line's output goes (__rexec_s_outfd, __rexec_s_errfd):
# the descriptors __rexec_begin made for it while each is still the same
# pipe as its spare copy; else whichever of the two is still the session's
# pipe (readlink against its name kept at the start: forks only then); else
# none, and the status record names the stream (__rexec_s_unmarked) for the
# client not to wait for it. So a line that takes one of them for itself
# (`exec 254>file`, a FIFO) never gets a byte of rexec's in it.
__rexec_mark_fds() {
    __rexec_s_unmarked=
    __rexec_find_fd "$__rexec_s_out" "$__rexec_s_outref" "$__rexec_s_outpipe" stdout
    __rexec_s_outfd=$__rexec_s_fd
    __rexec_find_fd "$__rexec_s_err" "$__rexec_s_errref" "$__rexec_s_errpipe" stderr
    __rexec_s_errfd=$__rexec_s_fd
}

# __rexec_find_fd FD SPARE PIPE NAME: see __rexec_mark_fds; in __rexec_s_fd.
__rexec_find_fd() {
    if [[ /dev/fd/$1 -ef /dev/fd/$2 ]]; then
        __rexec_s_fd=$1
        return
    fi
    for __rexec_s_fd in "$1" "$2"; do
        if [[ -p /dev/fd/$__rexec_s_fd && $(readlink "/proc/$$/fd/$__rexec_s_fd") == "$3" ]]; then
            return
        fi
    done
    __rexec_s_fd= __rexec_s_unmarked+=" $4"
}

# Runs the user's PROMPT_COMMAND, as bash would before its prompt, then sends
# the status and the directory (the snapshot follows the markers).
__rexec_report() {
    if ((${#__rexec_u_prompt_command[@]})); then
        # With the user's settings, $? and $_; put aside again after. Not
        # `set -x`, which would trace rexec's own steps around it.
        __rexec_s_xtrace=${__rexec_u_flags//[^x]/}
        __rexec_u_flags=${__rexec_u_flags//x/}
        __rexec_settings
        for __rexec_s_value in "${__rexec_u_prompt_command[@]}"; do
            __rexec_return "$__rexec_s_status" "$__rexec_u_underscore"
            builtin eval "$__rexec_s_value"
        done </dev/null 2>&"${__rexec_s_user_err:-2}"
        __rexec_s_running=$__rexec_s_report
        __rexec_end "$__rexec_s_status" "$__rexec_u_underscore"
        __rexec_u_flags+=$__rexec_s_xtrace
    fi
    __rexec_mark_fds
    __rexec_send "status $__rexec_s_report"$'\n'"$__rexec_s_status$__rexec_s_unmarked"$'\n'"$PWD"
    __rexec_s_snapshot=$__rexec_s_report __rexec_s_report=
}

# Sets $? to STATUS (and $_ to the last argument).
__rexec_return() {
    return "$1"
}

# The state a new shell needs to be this one (see state.py: Snapshot), in the
# order it is to be restored: options before the functions whose text they
# change (extglob), aliases last so that they change nothing restored. The
# last line says it is whole: a snapshot cut short by Ctrl-C is not used.
#
# The options (`shopt -p`, `set +o`: a third of the snapshot's lines, each a
# write and rarely changed) are sent only when $BASHOPTS or $SHELLOPTS, which
# name those that are on, changed since the last snapshot that had them and
# was written whole; the section "options" names that snapshot's SEQ either
# way, and the client takes them from it.
__rexec_snapshot() {
    __rexec_u_dirstack=("${DIRSTACK[@]}")
    __rexec_s_options_now="$BASHOPTS $SHELLOPTS"
    {
        __rexec_keyed "state $1" '\n'
        if [ "$__rexec_s_options_now" = "$__rexec_s_options" ]; then
            builtin printf '%s options\n%s\n' "$__rexec_s_mark" "$__rexec_s_options_seq"
        else
            builtin printf '%s options\n%s\n' "$__rexec_s_mark" "$1"
            builtin printf '%s shopt\n' "$__rexec_s_mark"
            builtin shopt -p
            builtin printf '%s setopts\n' "$__rexec_s_mark"
            builtin set +o
        fi
        builtin printf '%s vars\n' "$__rexec_s_mark"
        builtin declare -p
        builtin printf '%s funcs\n' "$__rexec_s_mark"
        builtin declare -f
        builtin printf '%s fattrs\n' "$__rexec_s_mark"
        builtin declare -F
        builtin printf '%s traps\n' "$__rexec_s_mark"
        builtin trap -p
        builtin printf '%s umask\n' "$__rexec_s_mark"
        builtin umask
        builtin printf '%s aliases\n' "$__rexec_s_mark"
        builtin alias -p
        builtin printf '%s end\n\0' "$__rexec_s_mark"
    } 2>/dev/null >| "$__rexec_s_ctl" || return
    if [ "$__rexec_s_options_now" != "$__rexec_s_options" ]; then
        __rexec_s_options=$__rexec_s_options_now __rexec_s_options_seq=$1
    fi
}

# Tab completion: SEQ KIND WORD, KIND "command" (the first word: aliases,
# functions, builtins, keywords, programs; and paths), "variable" (after a $)
# or "path". Sends the candidates, one per line, directories marked with a
# trailing /, each with \ and newline written as \\ and \n (a file name may
# hold a newline; the client undoes it).
__rexec_complete() {
    __rexec_s_value="complete $1"
    case $2 in
        command) builtin mapfile -t __rexec_s_list < <(builtin compgen -c -- "$3" 2>/dev/null) ;;
        variable) builtin mapfile -t __rexec_s_list < <(builtin compgen -v -- "$3" 2>/dev/null) ;;
        *) __rexec_s_list=() ;;
    esac
    if [ "$2" != variable ]; then
        # Paths by a glob, not compgen -f, whose lines would split a name
        # that holds a newline; failglob off for it (nullglob does no harm).
        case $3 in "~/"*) __rexec_s_test=$HOME/${3#"~/"} ;; *) __rexec_s_test=$3 ;; esac
        if builtin shopt -q failglob; then __rexec_s_glob=1; builtin shopt -u failglob; else __rexec_s_glob=; fi
        for __rexec_s_path in "$__rexec_s_test"*; do
            if [ -d "$__rexec_s_path" ]; then
                __rexec_s_path+=/
            elif ! [ -e "$__rexec_s_path" ] && ! [ -L "$__rexec_s_path" ]; then
                continue
            fi
            case $3 in "~/"*) __rexec_s_path="~/${__rexec_s_path#"$HOME/"}" ;; esac
            __rexec_s_list+=("$__rexec_s_path")
        done
        if [ -n "$__rexec_s_glob" ]; then builtin shopt -s failglob; fi
    fi
    for __rexec_s_path in "${__rexec_s_list[@]}"; do
        __rexec_s_path=${__rexec_s_path//\\/\\\\}
        __rexec_s_value+=$'\n'${__rexec_s_path//$'\n'/\\n}
    done
    __rexec_send "$__rexec_s_value"
    builtin unset -v __rexec_s_list __rexec_s_path __rexec_s_test __rexec_s_glob
}

# The start of a session, CTL MARK KEY: the session's stdout and stderr (hidden
# until now, see session.py) given back, two spare descriptors of them kept
# for the markers, the control channel named, the key its records carry kept.
__rexec_begin() {
    exec 1>&4 2>&3 3>&- 4>&-
    # Spare descriptors high up, where a line's own redirections rarely go.
    __rexec_s_value=$(builtin ulimit -n 2>/dev/null)
    if ! [[ $__rexec_s_value =~ ^[0-9]+$ ]] || ((__rexec_s_value > 256)); then __rexec_s_value=256; fi
    __rexec_s_out=$((__rexec_s_value - 2)) __rexec_s_err=$((__rexec_s_value - 3))
    __rexec_s_setfd=$((__rexec_s_value - 4))
    __rexec_s_outref=$((__rexec_s_value - 5)) __rexec_s_errref=$((__rexec_s_value - 6))
    builtin eval "exec $__rexec_s_out>&1 $__rexec_s_err>&2 $__rexec_s_outref>&1 $__rexec_s_errref>&2"
    __rexec_s_outfd=$__rexec_s_out __rexec_s_errfd=$__rexec_s_err
    __rexec_s_outpipe=$(readlink "/proc/$$/fd/1") __rexec_s_errpipe=$(readlink "/proc/$$/fd/2")
    __rexec_s_ctl=$1 __rexec_s_mark=$2
    __rexec_keep_key "$3"
    __rexec_s_running= __rexec_s_report= __rexec_s_nonce= __rexec_s_snapshot= __rexec_s_status=0
    # (A restored snapshot brings its shell's; this one has sent none yet.)
    __rexec_s_options= __rexec_s_options_seq=
    PROMPT_COMMAND=$__rexec_s_hook
}

# The start-up files a login bash reads (rexec starts bash with --norc
# --noprofile so that their prompt settings stay hidden until put aside), run
# at the top level by `builtin eval "$__rexec_s_login"`, stdin /dev/null.
__rexec_s_login='builtin set -o history
if [ -r /etc/profile ]; then . /etc/profile; fi
for __rexec_s_value in ~/.bash_profile ~/.bash_login ~/.profile; do
    if [ -r "$__rexec_s_value" ]; then . "$__rexec_s_value"; break; fi
done'

# After a restored snapshot, STATUS: back in its directory and directory stack
# (the variables are back already, OLDPWD among them), its status for $?. A
# directory that is gone leaves the shell in HOME, as a new login would, and
# says so (PWD, restored with the variables, must not name where it is not).
__rexec_restored() {
    __rexec_s_value=$OLDPWD
    if ! builtin cd -- "$PWD" 2>/dev/null; then
        __rexec_send "warning 0"$'\n'"the directory $PWD is gone; the shell is in ${HOME:-/} instead"
        builtin cd -- "${HOME:-/}" 2>/dev/null || builtin cd /
    fi
    OLDPWD=$__rexec_s_value
    for ((__rexec_s_i = ${#__rexec_u_dirstack[@]} - 1; __rexec_s_i > 0; __rexec_s_i--)); do
        builtin pushd -n -- "${__rexec_u_dirstack[__rexec_s_i]}" >/dev/null
    done
    __rexec_s_status=$1 __rexec_s_live=
    PROMPT_COMMAND=$__rexec_s_hook
}

# The shell is ready, KEY NONCE: the key kept again, the user's settings put
# aside, the history bash would have loaded at start-up loaded, the identity
# sent, the start-up files' output marked as complete, a first snapshot sent.
__rexec_ready() {
    __rexec_keep_key "$1"
    # The line editing mode a restored snapshot had (state.py), set in a
    # file that `.` runs, as a line that names it is (__rexec_pre), so that
    # the shell's input stays as it is. (Not on by default, as over ssh:
    # with it on, bash runs no PROMPT_COMMAND.)
    if [ -n "${__rexec_s_editing-}" ]; then
        builtin eval "builtin . /dev/fd/$__rexec_s_setfd" \
            "$__rexec_s_setfd<<<'builtin set -o $__rexec_s_editing'"
        builtin unset -v __rexec_s_editing
    fi
    __rexec_s_running=ready
    __rexec_end "$__rexec_s_status" "${__rexec_u_underscore-$_}"
    __rexec_s_report=
    # The history holds the start-up's own lines (history is on while the
    # login files run, for them to turn it off): bash starts a session's
    # history from HISTFILE alone.
    if [ "$__rexec_u_history" = 1 ]; then builtin history -c; fi
    if [ "$__rexec_u_history" = 1 ] && [ -n "${HISTFILE-}" ]; then builtin history -r; fi
    __rexec_send "ready 0"$'\n'"bash $BASH_VERSION"$'\n'"${USER:-$(id -un 2>/dev/null)}"$'\n'"${HOSTNAME%%.*}"$'\n'"${HOME-}"$'\n'"$PWD"
    __rexec_s_snapshot=0
    __rexec_finish 0 "$2"
}

# Leaving with STATUS: the user's settings back, so that bash saves the
# history as it would, then what a login shell does on exit. Under `set -x`
# bash traces each step on its stderr as it starts it, which here is
# /dev/null: nothing of rexec's shows, while ~/.bash_logout's own commands
# (and its output) go to the session's stderr, as a login bash's would.
__rexec_leave() {
    {
        PROMPT_COMMAND=
        __rexec_settings "$__rexec_u_underscore"
        if [ -r ~/.bash_logout ]; then . ~/.bash_logout </dev/null 2>&"$__rexec_s_err"; fi
        builtin exit "$1"
    } 2>/dev/null
}
