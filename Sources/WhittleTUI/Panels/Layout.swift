/// Screen geometry computed from the state and size alone: where the tab bar, panels and
/// status bar go, and where each panel's list rows start. Shared by `render` and by mouse
/// handling in `update`, so clicks land where things are drawn.
public struct Layout: Sendable, Equatable {
    /// Smallest usable terminal; below it the workbench shows a "too small" screen.
    public static let minimumSize = Size(width: 60, height: 18)
    /// From this width on, the detail panel sits next to the primary panel.
    public static let wideWidth = 140

    public var size: Size
    public var tooSmall: Bool
    public var tabBar: Rect
    public var statusBar: Rect
    /// Panels on screen with their boxes.
    public var panels: [(panel: Panel, rect: Rect)]
    /// Column range of each tab in the tab bar.
    public var tabs: [(panel: Panel, columns: Range<Int>)]
    /// Where the tabs start (the program and model name are left of it).
    public var tabStart: Int

    public static func == (a: Layout, b: Layout) -> Bool {
        a.size == b.size && a.tooSmall == b.tooSmall && a.panels.map(\.panel) == b.panels.map(\.panel)
            && a.panels.map(\.rect) == b.panels.map(\.rect)
    }

    public init(state: WorkbenchState, size: Size) {
        self.size = size
        tooSmall = size.width < Layout.minimumSize.width || size.height < Layout.minimumSize.height
        let screen = Rect(x: 0, y: 0, width: size.width, height: size.height)
        let (top, rest) = screen.splitTop(1)
        let (body, bottom) = rest.splitBottom(1)
        tabBar = top
        statusBar = bottom
        if size.width >= Layout.wideWidth {
            let (left, right) = body.splitLeft(body.width * 58 / 100)
            panels = [(state.primary, left), (.detail, right)]
        } else {
            panels = [(state.focus, body)]
        }
        let style = Layout.tabStyle(width: size.width)
        tabStart = Layout.tabStart(state: state, width: size.width)
        var tabs: [(Panel, Range<Int>)] = []
        var x = tabStart
        for panel in Panel.allCases {
            let width = Layout.tabLabel(panel, style: style, focused: panel == state.focus).count
            tabs.append((panel, x..<x + width))
            x += width + 1
        }
        self.tabs = tabs
    }

    public func rect(of panel: Panel) -> Rect? { panels.first { $0.panel == panel }?.rect }

    public func panel(atX x: Int, y: Int) -> Panel? { panels.first { $0.rect.contains(x: x, y: y) }?.panel }

    /// Below this width the tab bar uses short labels and drops the program name.
    public static let compactTabsBelow = 110
    /// Below this width only the focused tab shows its name; the others show their digit.
    public static let narrowTabsBelow = 80

    enum TabStyle { case full, compact, narrow }

    static func tabStyle(width: Int) -> TabStyle {
        width >= compactTabsBelow ? .full : width >= narrowTabsBelow ? .compact : .narrow
    }

    static func tabLabel(_ panel: Panel, style: TabStyle, focused: Bool) -> String {
        if style == .full { return " \(panel.rawValue) \(panel.title) " }
        if style == .narrow && !focused { return "\(panel.rawValue)" }
        let short: String
        switch panel {
        case .compression: short = "Compress"
        case .quantization: short = "Quant"
        default: short = panel.title
        }
        return "\(panel.rawValue) \(short)"
    }

    /// Cells the running-job indicator at the right end of the tab bar needs at least
    /// (spinner and percentage, "⠋ 100%", and a space before it).
    static let shortJobIndicator = 7
    static let fullJobIndicator = 22

    /// The tabs start after the program and model name, which gives way (down to nothing) so
    /// the tabs and, while jobs run, the job indicator fit.
    static func tabStart(state: WorkbenchState, width: Int) -> Int {
        let style = tabStyle(width: width)
        let tabs = Panel.allCases.map { tabLabel($0, style: style, focused: $0 == state.focus).count + 1 }.reduce(0, +) - 1
        let reserve = state.runningJobs.isEmpty ? 0 : style == .full ? fullJobIndicator : shortJobIndicator
        let wanted = style == .full ? min(30, 12 + state.model.name.count) : min(18, 2 + state.model.name.count)
        return max(0, min(wanted, width - tabs - reserve))
    }

    /// The list area of a panel (rows of its table), inside the box and below its headers.
    public static func listArea(of panel: Panel, in rect: Rect) -> Rect {
        let inner = rect.inset(1)
        switch panel {
        case .layers: return Rect(x: inner.x, y: inner.y + 1, width: inner.width, height: inner.height - 2)
        case .compression: return Rect(x: inner.x, y: inner.y + 4, width: inner.width, height: inner.height - 4)
        case .quantization:
            let split = quantizationSplit(inner)
            return Rect(x: split.layers.x, y: split.layers.y + 1, width: split.layers.width, height: split.layers.height - 1)
        case .compare: return Rect(x: inner.x, y: inner.y + 1, width: min(inner.width, compareListWidth(inner)), height: inner.height - 1)
        case .jobs: return Rect(x: inner.x, y: inner.y + 1, width: inner.width, height: inner.height - 2)
        case .export:
            return Rect(x: inner.x, y: inner.y + exportHeaderRows, width: inner.width,
                        height: max(0, min(inner.height - exportHeaderRows - 1, ExportKind.allCases.count * exportRowHeight)))
        case .detail: return Rect(x: inner.x, y: inner.y, width: 0, height: 0)
        }
    }

    /// Quantization panel: recipe editor and per-layer table, side by side when wide enough.
    static func quantizationSplit(_ inner: Rect) -> (recipe: Rect, layers: Rect) {
        let body = Rect(x: inner.x, y: inner.y + 2, width: inner.width, height: inner.height - 2)
        if body.width >= 70 {
            let (left, right) = body.splitLeft(38)
            return (left, Rect(x: right.x + 1, y: right.y, width: right.width - 1, height: right.height))
        }
        let (top, bottom) = body.splitTop(QuantizationField.allCases.count + 1)
        return (top, bottom)
    }

    /// Export panel: lines above the list (folder, version, blank, column titles) and lines
    /// per export (the export, then what it needs).
    static let exportHeaderRows = 4
    public static let exportRowHeight = 2

    static func compareListWidth(_ inner: Rect) -> Int { inner.width >= 70 ? 34 : inner.width }

    /// Compression table columns: name, technique, slider, value, MACs, score.
    static func compressionColumns(width: Int) -> (name: Int, technique: Int, slider: Int, value: Int, macs: Int, score: Int) {
        let technique = 15, value = 5, macs = 8, score = 7
        let flexible = max(10, width - technique - value - macs - score - 5)
        let name = max(8, min(28, flexible * 2 / 5))
        let slider = max(6, flexible - name)
        return (name, technique, slider, value, macs, score)
    }

    /// The x range of the compression sliders inside a list area.
    public static func sliderColumns(in list: Rect) -> Range<Int> {
        let c = compressionColumns(width: list.width)
        let start = list.x + c.name + 1 + c.technique + 1
        return start..<start + c.slider
    }
}
