/** The application shell: providers, the header and the current screen. */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useState } from "react";

import { ApiKeyDialog } from "./components/Auth/ApiKeyDialog";
import { Header } from "./components/Layout/Header";
import { RouterProvider, useRouter } from "./hooks/router";
import { ChatProvider } from "./hooks/useChat";
import { I18nProvider, useI18n } from "./i18n";
import { ChatPage } from "./pages/ChatPage";
import { DocumentsPage } from "./pages/DocumentsPage";
import { FinetunePage } from "./pages/FinetunePage";
import { ReviewsPage } from "./pages/ReviewsPage";
import { StatusPage } from "./pages/StatusPage";

function Screen() {
  const { path } = useRouter();
  switch (path) {
    case "/documents":
      return <DocumentsPage />;
    case "/reviews":
      return <ReviewsPage />;
    case "/finetune":
      return <FinetunePage />;
    case "/status":
      return <StatusPage />;
    default:
      return <ChatPage />;
  }
}

function Shell() {
  const { t } = useI18n();
  const { path } = useRouter();
  return (
    <>
      <a href="#main" className="skip-link">
        {t("app.skip")}
      </a>
      <Header />
      <main id="main" className={path === "/" ? "main main-chat" : "main"} tabIndex={-1}>
        <Screen />
      </main>
      <ApiKeyDialog />
    </>
  );
}

export function App() {
  const [queryClient] = useState(
    () =>
      new QueryClient({
        defaultOptions: { queries: { refetchOnWindowFocus: false, retry: 1, staleTime: 5_000 } },
      }),
  );
  return (
    <QueryClientProvider client={queryClient}>
      <I18nProvider>
        <RouterProvider>
          <ChatProvider>
            <Shell />
          </ChatProvider>
        </RouterProvider>
      </I18nProvider>
    </QueryClientProvider>
  );
}
