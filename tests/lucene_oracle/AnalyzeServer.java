// The Lucene oracle: builds every <fieldType> analyzer of a Solr schema.xml with Lucene's own
// factories (CustomAnalyzer, the same classes Solr instantiates) and answers analysis requests.
//
// Usage: java -cp lucene-core.jar:lucene-analyzers-common.jar:. AnalyzeServer path/to/schema.xml
// Protocol, one line each way (UTF-8):
//   request:  <index|query> TAB <fieldType name> TAB <base64 of the UTF-8 text>
//   response: {"tokens":[[term, position, startOffset, endOffset, type, positionLength], ...]}
//             or {"error":"..."}
// Positions count from 0. The first line written is {"ready":true,"types":{name: class, ...}}.
// Resource files (articles="lang/contractions_fr.txt") are read relative to the schema's directory,
// as Solr reads them from the configset's conf/ directory.

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import javax.xml.parsers.DocumentBuilderFactory;
import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.custom.CustomAnalyzer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.analysis.tokenattributes.OffsetAttribute;
import org.apache.lucene.analysis.tokenattributes.PositionIncrementAttribute;
import org.apache.lucene.analysis.tokenattributes.PositionLengthAttribute;
import org.apache.lucene.analysis.tokenattributes.TypeAttribute;
import org.apache.lucene.analysis.util.AbstractAnalysisFactory;
import org.apache.lucene.analysis.util.CharFilterFactory;
import org.apache.lucene.analysis.util.TokenFilterFactory;
import org.apache.lucene.analysis.util.TokenizerFactory;
import org.apache.lucene.util.Version;
import org.w3c.dom.Element;
import org.w3c.dom.NamedNodeMap;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

public final class AnalyzeServer {
  private static final Map<String, Class<? extends AbstractAnalysisFactory>> FACTORIES = new HashMap<>();

  /** solr.XFactory (Solr's short form) or a full class name -> the Lucene factory class. */
  private static Class<? extends AbstractAnalysisFactory> factory(String kind, String name) {
    if (FACTORIES.isEmpty()) {
      for (String spi : TokenizerFactory.availableTokenizers()) {
        Class<? extends AbstractAnalysisFactory> c = TokenizerFactory.lookupClass(spi);
        FACTORIES.put("tokenizer:" + c.getSimpleName(), c);
        FACTORIES.put("tokenizer:" + c.getName(), c);
      }
      for (String spi : TokenFilterFactory.availableTokenFilters()) {
        Class<? extends AbstractAnalysisFactory> c = TokenFilterFactory.lookupClass(spi);
        FACTORIES.put("filter:" + c.getSimpleName(), c);
        FACTORIES.put("filter:" + c.getName(), c);
      }
      for (String spi : CharFilterFactory.availableCharFilters()) {
        Class<? extends AbstractAnalysisFactory> c = CharFilterFactory.lookupClass(spi);
        FACTORIES.put("charFilter:" + c.getSimpleName(), c);
        FACTORIES.put("charFilter:" + c.getName(), c);
      }
    }
    String key = kind + ":" + (name.startsWith("solr.") ? name.substring(5) : name);
    Class<? extends AbstractAnalysisFactory> found = FACTORIES.get(key);
    if (found == null) {
      throw new IllegalArgumentException("no Lucene " + kind + " factory for class=\"" + name + "\"");
    }
    return found;
  }

  private static Map<String, String> params(Element element) {
    Map<String, String> out = new LinkedHashMap<>();
    NamedNodeMap attributes = element.getAttributes();
    for (int i = 0; i < attributes.getLength(); i++) {
      Node a = attributes.item(i);
      if (!a.getNodeName().equals("class")) {
        out.put(a.getNodeName(), a.getNodeValue());
      }
    }
    return out;
  }

  @SuppressWarnings("unchecked")
  private static Analyzer build(Path conf, Element analyzer, int gap) throws Exception {
    if (analyzer.hasAttribute("class")) {
      throw new IllegalArgumentException("analyzer class= is not supported; use a tokenizer and filters");
    }
    CustomAnalyzer.Builder builder =
        CustomAnalyzer.builder(conf).withDefaultMatchVersion(Version.LATEST).withPositionIncrementGap(gap);
    boolean tokenizer = false;
    NodeList children = analyzer.getChildNodes();
    for (int i = 0; i < children.getLength(); i++) {
      if (!(children.item(i) instanceof Element)) {
        continue;
      }
      Element child = (Element) children.item(i);
      String kind = child.getTagName();
      String name = child.getAttribute("class");
      switch (kind) {
        case "charFilter":
          builder.addCharFilter((Class<? extends CharFilterFactory>) factory(kind, name), params(child));
          break;
        case "tokenizer":
          builder.withTokenizer((Class<? extends TokenizerFactory>) factory(kind, name), params(child));
          tokenizer = true;
          break;
        case "filter":
          builder.addTokenFilter((Class<? extends TokenFilterFactory>) factory(kind, name), params(child));
          break;
        default:
          throw new IllegalArgumentException("unexpected <" + kind + "> in <analyzer>");
      }
    }
    if (!tokenizer) {
      throw new IllegalArgumentException("an <analyzer> needs a <tokenizer>");
    }
    return builder.build();
  }

  /** fieldType name -> {index analyzer, query analyzer}, for every solr.TextField type. */
  private static Map<String, Analyzer[]> load(Path schema, Map<String, String> classes) throws Exception {
    DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
    factory.setExpandEntityReferences(false);
    Element root = factory.newDocumentBuilder().parse(schema.toFile()).getDocumentElement();
    Path conf = schema.toAbsolutePath().getParent();
    Map<String, Analyzer[]> out = new LinkedHashMap<>();
    NodeList types = root.getElementsByTagName("fieldType");
    for (int i = 0; i < types.getLength(); i++) {
      Element type = (Element) types.item(i);
      String name = type.getAttribute("name");
      classes.put(name, type.getAttribute("class"));
      if (!type.getAttribute("class").equals("solr.TextField")) {
        continue;
      }
      int gap = type.hasAttribute("positionIncrementGap")
          ? Integer.parseInt(type.getAttribute("positionIncrementGap")) : 0;
      Analyzer index = null;
      Analyzer query = null;
      NodeList analyzers = type.getElementsByTagName("analyzer");
      for (int j = 0; j < analyzers.getLength(); j++) {
        Element analyzer = (Element) analyzers.item(j);
        String side = analyzer.getAttribute("type");
        Analyzer built;
        try {
          built = build(conf, analyzer, gap);
        } catch (Exception e) {
          throw new IllegalArgumentException("fieldType " + name + ": " + e.getMessage(), e);
        }
        if (side.isEmpty()) {
          index = built;
          query = built;
        } else if (side.equals("index")) {
          index = built;
        } else if (side.equals("query")) {
          query = built;
        } else if (!side.equals("multiterm")) {
          throw new IllegalArgumentException("fieldType " + name + ": unknown analyzer type " + side);
        }
      }
      if (index == null || query == null) {
        throw new IllegalArgumentException("fieldType " + name + " needs an index and a query analyzer");
      }
      out.put(name, new Analyzer[] {index, query});
    }
    return out;
  }

  private static void string(StringBuilder out, String value) {
    out.append('"');
    for (int i = 0; i < value.length(); i++) {
      char c = value.charAt(i);
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    out.append('"');
  }

  private static String analyze(Analyzer analyzer, String field, String text) throws Exception {
    StringBuilder out = new StringBuilder("{\"tokens\":[");
    try (TokenStream stream = analyzer.tokenStream(field, new StringReader(text))) {
      CharTermAttribute term = stream.addAttribute(CharTermAttribute.class);
      PositionIncrementAttribute increment = stream.addAttribute(PositionIncrementAttribute.class);
      PositionLengthAttribute length = stream.addAttribute(PositionLengthAttribute.class);
      OffsetAttribute offset = stream.addAttribute(OffsetAttribute.class);
      TypeAttribute type = stream.addAttribute(TypeAttribute.class);
      stream.reset();
      int position = -1;
      boolean first = true;
      while (stream.incrementToken()) {
        position += increment.getPositionIncrement();
        out.append(first ? "[" : ",[");
        first = false;
        string(out, term.toString());
        out.append(',').append(position).append(',').append(offset.startOffset()).append(',')
            .append(offset.endOffset()).append(',');
        string(out, type.type());
        out.append(',').append(length.getPositionLength()).append(']');
      }
      stream.end();
    }
    return out.append("]}").toString();
  }

  public static void main(String[] args) throws Exception {
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
    Map<String, String> classes = new LinkedHashMap<>();
    Map<String, Analyzer[]> types;
    try {
      types = load(Paths.get(args[0]), classes);
    } catch (Exception e) {
      StringBuilder error = new StringBuilder("{\"error\":");
      string(error, "cannot build the analyzers of " + args[0] + ": " + e);
      out.println(error.append('}'));
      System.exit(2);
      return;
    }
    StringBuilder ready = new StringBuilder("{\"ready\":true,\"lucene\":");
    string(ready, Version.LATEST.toString());
    ready.append(",\"types\":{");
    boolean first = true;
    for (Map.Entry<String, String> entry : classes.entrySet()) {
      if (!first) {
        ready.append(',');
      }
      first = false;
      string(ready, entry.getKey());
      ready.append(':');
      string(ready, entry.getValue());
    }
    out.println(ready.append("}}"));
    Set<String> sides = Set.of("index", "query");
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      String[] parts = line.split("\t", 3);
      String reply;
      try {
        if (parts.length != 3 || !sides.contains(parts[0])) {
          throw new IllegalArgumentException("expected <index|query> TAB <fieldType> TAB <base64 text>");
        }
        Analyzer[] pair = types.get(parts[1]);
        if (pair == null) {
          throw new IllegalArgumentException("no text fieldType named " + parts[1]);
        }
        String text = new String(Base64.getDecoder().decode(parts[2]), StandardCharsets.UTF_8);
        reply = analyze(parts[0].equals("index") ? pair[0] : pair[1], parts[1], text);
      } catch (Exception e) {
        StringBuilder error = new StringBuilder("{\"error\":");
        string(error, e.toString());
        reply = error.append('}').toString();
      }
      out.println(reply);
    }
  }
}
